//! api (stub).

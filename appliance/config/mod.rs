//! config (stub).

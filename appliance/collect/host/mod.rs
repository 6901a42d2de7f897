//! Host collector (stub).

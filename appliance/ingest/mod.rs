//! ingest (stub).

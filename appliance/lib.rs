//! Picket: one binary per node that collects host metrics, stores them in an embedded redb
//! store and serves the Prometheus HTTP API. The modules follow the data flow of
//! `DESIGN.md`: `collect` → `ingest` → `store` → `query` → `api`.

pub mod api;
pub mod app;
pub mod cli;
pub mod collect;
pub mod config;
pub mod forward;
pub mod ingest;
pub mod model;
pub mod notify;
pub mod query;
pub mod rules;
pub mod store;

//! SQL over one tenant's data, with DataFusion.
//!
//! Each statement gets a fresh `SessionContext` that holds only the caller's
//! tables, so nothing crosses tenants:
//!
//! - `spans`: the tenant's Parquet files unioned with the spans not written
//!   yet (the span schema of `causeway_model::schema`);
//! - `red`: one row per RED cell (service × operation × kind × status ×
//!   window), with calls, errors and latency quantiles;
//! - `edges`: one row per service graph edge cell.
//!
//! Only queries run: DDL, DML (`INSERT`, `COPY`), `SET` and other statements
//! are refused, URL tables and `information_schema` are off, and no table
//! function that reads files is registered. A statement runs on its own
//! small runtime (so a heavy query does not slow ingest), with a time limit,
//! a memory limit and a row cap.

mod cells;
mod engine;
#[cfg(test)]
mod tests;

pub use engine::*;

//! The SQL engine: a DataFusion session per query over one tenant's
//! tables (span files and buffered spans, series cells), with a timeout,
//! a memory limit and a row cap.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::builder::{
    Float64Builder, Int64Builder, StringDictionaryBuilder, TimestampNanosecondBuilder,
    UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use causeway_model::TenantId;
use causeway_model::schema::span_schema;
use datafusion::common::config::Dialect;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use serde::Deserialize;

use super::cells;
use crate::graph::EdgeKey;
use crate::query::{QueryHandle, SnapshotCell, SnapshotRequest};

use crate::red::{RedKey, kind_label, status_label};
use crate::series::{Cell, Resolution};

/// SQL limits (`processors.spans.sql` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlConfig {
    /// Longest a statement may run.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Rows returned at most; more are cut and the answer says so.
    pub max_rows: usize,
    /// Memory a statement's sorts, joins and aggregations may hold, MiB.
    pub memory_limit_mib: usize,
    /// Threads of the SQL runtime.
    pub threads: usize,
}

impl Default for SqlConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_rows: 10_000,
            memory_limit_mib: 512,
            threads: 1,
        }
    }
}

impl SqlConfig {
    /// Problems, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.timeout.is_zero() {
            out.push(("sql.timeout", "must be more than 0".to_owned()));
        }
        if self.max_rows == 0 {
            out.push(("sql.max_rows", "must be at least 1".to_owned()));
        }
        if self.memory_limit_mib == 0 {
            out.push(("sql.memory_limit_mib", "must be at least 1".to_owned()));
        }
        if !(1..=64).contains(&self.threads) {
            out.push(("sql.threads", "must be between 1 and 64".to_owned()));
        }
        out
    }
}

/// Why a statement produced no answer, by who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The statement does not parse, names an unknown table or column, or
    /// is not a query (the caller's fault).
    #[error("{0}")]
    Invalid(String),
    /// The statement ran over its time or memory limit (the caller's fault:
    /// narrow it).
    #[error("{0}")]
    Limit(String),
    /// The processor is shutting down.
    #[error("the processor is shutting down")]
    Stopped,
    /// Reading stored data failed (the environment's fault, or a bug).
    #[error("query failed: {0}")]
    Internal(String),
}

/// A statement's answer.
#[derive(Debug)]
pub struct SqlAnswer {
    /// Columns.
    pub schema: SchemaRef,
    /// Rows, at most `max_rows`.
    pub batches: Vec<RecordBatch>,
    /// Whether rows were cut at `max_rows`.
    pub truncated: bool,
}

impl SqlAnswer {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Runs SQL statements for the API on a runtime of its own.
#[derive(Debug)]
pub struct SqlEngine {
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) processor: QueryHandle,
    pub(super) config: SqlConfig,
    /// Dropping this ends the runtime's thread (the runtime is dropped
    /// there, outside any async context, as tokio requires).
    pub(super) _stop: std::sync::mpsc::SyncSender<()>,
}

impl SqlEngine {
    /// Starts the SQL runtime.
    pub fn start(processor: QueryHandle, config: SqlConfig) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("causeway-sql")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = std::sync::mpsc::sync_channel::<()>(0);
        std::thread::Builder::new()
            .name("causeway-sql-owner".into())
            .spawn(move || {
                // Returns when the engine is dropped.
                let _ = stopped.recv();
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Self {
            runtime: handle,
            processor,
            config,
            _stop: stop,
        })
    }

    /// Runs one statement over `tenant`'s data.
    pub async fn query(&self, tenant: TenantId, sql: String) -> Result<SqlAnswer, SqlError> {
        let processor = self.processor.clone();
        let config = self.config.clone();
        let timeout = config.timeout;
        let task = self
            .runtime
            .spawn(async move { run(&processor, &tenant, &sql, &config).await });
        let abort = task.abort_handle();
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => Err(SqlError::Internal(format!("the query task failed: {e}"))),
            Err(_) => {
                // Dropping DataFusion's stream cancels the plan's work.
                abort.abort();
                Err(SqlError::Limit(format!(
                    "the query ran longer than the {} limit; narrow its time range or filter",
                    humantime::format_duration(timeout)
                )))
            }
        }
    }
}

pub(super) async fn run(
    processor: &QueryHandle,
    tenant: &TenantId,
    sql: &str,
    config: &SqlConfig,
) -> Result<SqlAnswer, SqlError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(config.memory_limit_mib.saturating_mul(1 << 20), 1.0)
        .build_arc()
        .map_err(|e| SqlError::Internal(e.to_string()))?;
    let session = SessionConfig::new()
        .with_target_partitions(config.threads.max(1))
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config_rt(session, runtime);

    // Which tables does it read?
    let state = ctx.state();
    let statement = state
        .sql_to_statement(sql, &Dialect::Generic)
        .map_err(classify)?;
    let refs = state
        .resolve_table_references(&statement)
        .map_err(classify)?;
    // Spans are listed (files and buffers) up front; `red` and `edges` are
    // fetched at scan time, narrowed by the statement's filters.
    let snap = processor
        .snapshot(
            tenant.clone(),
            SnapshotRequest {
                spans: refs.iter().any(|r| r.table() == "spans"),
                ..SnapshotRequest::default()
            },
        )
        .await
        .map_err(|_| SqlError::Stopped)?;
    let window_ns = snap.window_ns;
    register_spans(&ctx, snap.span_files, snap.buffered).await?;
    for (name, family) in [("red", cells::Family::Red), ("edges", cells::Family::Edges)] {
        let table = cells::CellsTable {
            family,
            tenant: tenant.clone(),
            processor: processor.clone(),
            window_ns,
        };
        ctx.register_table(name, Arc::new(table))
            .map_err(internal_df)?;
    }

    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    // Refusing DDL, DML and statements happens on the plan, before anything
    // runs: planning `COPY` or `CREATE EXTERNAL TABLE` touches no file.
    let plan = ctx
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(classify)?;
    options.verify_plan(&plan).map_err(classify)?;
    let df = ctx.execute_logical_plan(plan).await.map_err(classify)?;
    let schema: SchemaRef = Arc::clone(df.schema().inner());
    let mut stream = df.execute_stream().await.map_err(classify)?;
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(classify)?;
        let room = config.max_rows - rows;
        if batch.num_rows() > room {
            batches.push(batch.slice(0, room));
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
        if rows == config.max_rows {
            // One more row would tell whether there is more.
            truncated = next_has_rows(&mut stream).await?;
            break;
        }
    }
    Ok(SqlAnswer {
        schema,
        batches,
        truncated,
    })
}

pub(super) async fn next_has_rows(
    stream: &mut datafusion::physical_plan::SendableRecordBatchStream,
) -> Result<bool, SqlError> {
    while let Some(batch) = stream.next().await {
        if batch.map_err(classify)?.num_rows() > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(super) async fn register_spans(
    ctx: &SessionContext,
    files: Vec<std::path::PathBuf>,
    buffered: Vec<RecordBatch>,
) -> Result<(), SqlError> {
    let schema = span_schema();
    let buffered = ctx
        .read_table(Arc::new(
            MemTable::try_new(Arc::clone(&schema), vec![buffered]).map_err(internal_df)?,
        ))
        .map_err(internal_df)?;
    let df = if files.is_empty() {
        buffered
    } else {
        let urls = files
            .iter()
            .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal_df)?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        let stored = ListingTable::try_new(config).map_err(internal_df)?;
        ctx.read_table(Arc::new(stored))
            .map_err(internal_df)?
            .union(buffered)
            .map_err(internal_df)?
    };
    ctx.register_table("spans", df.into_view())
        .map_err(internal_df)?;
    Ok(())
}

pub(super) fn dict() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

pub(super) fn window_fields() -> Vec<Field> {
    vec![
        Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("window_seconds", DataType::Int64, false),
    ]
}

pub(super) fn stat_fields(errors: &str) -> Vec<Field> {
    vec![
        Field::new("calls", DataType::UInt64, false),
        Field::new(errors, DataType::UInt64, false),
        Field::new("p50_ms", DataType::Float64, false),
        Field::new("p90_ms", DataType::Float64, false),
        Field::new("p99_ms", DataType::Float64, false),
        Field::new("max_ms", DataType::Float64, false),
    ]
}

/// The `red` table's schema.
pub fn red_schema() -> SchemaRef {
    let mut fields = window_fields();
    fields.extend([
        Field::new("service", dict(), false),
        Field::new("operation", dict(), false),
        Field::new("span_kind", dict(), false),
        Field::new("status_code", dict(), false),
    ]);
    fields.extend(stat_fields("errors"));
    Arc::new(Schema::new(fields))
}

/// The `edges` table's schema.
pub fn edges_schema() -> SchemaRef {
    let mut fields = window_fields();
    fields.extend([
        Field::new("client", dict(), false),
        Field::new("server", dict(), false),
        Field::new("connection_type", dict(), false),
    ]);
    fields.extend(stat_fields("failed"));
    Arc::new(Schema::new(fields))
}

/// Window and statistics columns, shared by both tables.
#[derive(Default)]
pub(super) struct StatColumns {
    pub(super) start: TimestampNanosecondBuilder,
    pub(super) seconds: Int64Builder,
    pub(super) calls: UInt64Builder,
    pub(super) errors: UInt64Builder,
    pub(super) q: [Float64Builder; 4],
}

impl StatColumns {
    fn push(&mut self, res: Resolution, start: i64, window_ns: i64, cell: &Cell) {
        let len = match res {
            Resolution::Base => window_ns,
            Resolution::Minute => 60_000_000_000,
            Resolution::Hour => 3_600_000_000_000,
        };
        let s = cell.stats();
        self.start.append_value(start);
        self.seconds.append_value(len / 1_000_000_000);
        self.calls.append_value(s.calls);
        self.errors.append_value(s.errors);
        for (b, us) in self
            .q
            .iter_mut()
            .zip([s.p50_us, s.p90_us, s.p99_us, s.max_us])
        {
            b.append_value(us as f64 / 1000.0);
        }
    }

    fn finish(mut self, keys: Vec<ArrayRef>) -> Vec<ArrayRef> {
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(self.start.finish().with_timezone("UTC")),
            Arc::new(self.seconds.finish()),
        ];
        out.extend(keys);
        out.push(Arc::new(self.calls.finish()));
        out.push(Arc::new(self.errors.finish()));
        for b in &mut self.q {
            out.push(Arc::new(b.finish()));
        }
        out
    }
}

/// RED cells as the `red` table.
pub fn red_batch(
    cells: &[SnapshotCell<RedKey>],
    window_ns: i64,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut stats = StatColumns::default();
    let mut keys: [StringDictionaryBuilder<Int32Type>; 4] = Default::default();
    for (k, res, start, cell) in cells {
        stats.push(*res, *start, window_ns, cell);
        keys[0].append_value(&*k.service);
        keys[1].append_value(&*k.operation);
        keys[2].append_value(kind_label(k.kind));
        keys[3].append_value(status_label(k.status));
    }
    let keys = keys
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    RecordBatch::try_new(red_schema(), stats.finish(keys))
}

/// Edge cells as the `edges` table.
pub fn edges_batch(
    cells: &[SnapshotCell<EdgeKey>],
    window_ns: i64,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut stats = StatColumns::default();
    let mut keys: [StringDictionaryBuilder<Int32Type>; 3] = Default::default();
    for (k, res, start, cell) in cells {
        stats.push(*res, *start, window_ns, cell);
        keys[0].append_value(&*k.client);
        keys[1].append_value(&*k.server);
        keys[2].append_value(k.connection.as_str());
    }
    let keys = keys
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    RecordBatch::try_new(edges_schema(), stats.finish(keys))
}

pub(super) fn internal_df(e: DataFusionError) -> SqlError {
    SqlError::Internal(e.to_string())
}

/// Sorts DataFusion's errors by who is at fault.
pub(super) fn classify(e: DataFusionError) -> SqlError {
    let message = e.to_string();
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(..) => SqlError::Invalid(message),
        DataFusionError::ResourcesExhausted(..) => SqlError::Limit(format!(
            "{message}; the statement needs more memory than its limit: narrow it"
        )),
        // Runtime errors of the statement itself (a cast that fails, a
        // division by zero) are the caller's too.
        DataFusionError::ArrowError(..) | DataFusionError::Execution(..) => {
            SqlError::Invalid(message)
        }
        _ => SqlError::Internal(message),
    }
}

/// The answer as JSON: `{"columns":[{"name","type"}],"rows":[{…}],"truncated":b}`.
/// Ids are hex strings, timestamps RFC 3339.
pub fn to_json(answer: &SqlAnswer) -> Result<Vec<u8>, arrow_schema::ArrowError> {
    let mut rows = Vec::new();
    {
        let mut writer = arrow_json::ArrayWriter::new(&mut rows);
        for b in &answer.batches {
            writer.write(b)?;
        }
        writer.finish()?;
    }
    if rows.is_empty() {
        rows.extend_from_slice(b"[]");
    }
    let columns: Vec<serde_json::Value> = answer
        .schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut out = Vec::with_capacity(rows.len() + 256);
    out.extend_from_slice(b"{\"columns\":");
    serde_json::to_writer(&mut out, &columns)
        .map_err(|e| arrow_schema::ArrowError::JsonError(e.to_string()))?;
    out.extend_from_slice(b",\"rows\":");
    out.extend_from_slice(&rows);
    out.extend_from_slice(if answer.truncated {
        b",\"truncated\":true}"
    } else {
        b",\"truncated\":false}"
    });
    Ok(out)
}

/// The answer as an Arrow IPC stream.
pub fn to_arrow_ipc(answer: &SqlAnswer) -> Result<Vec<u8>, arrow_schema::ArrowError> {
    let mut out = Vec::new();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &answer.schema)?;
    for b in &answer.batches {
        writer.write(b)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

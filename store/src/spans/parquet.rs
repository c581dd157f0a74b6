//! Span Parquet files themselves: how they are written (properties that
//! keep them small and prunable) and read back (projection, row filters by
//! time and trace, schema conformance across versions).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use causeway_model::schema::{col, span_schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{HOUR_NS, parse_hour};
use crate::error::{Error, Result};

/// Columns whose values (almost) never repeat: span ids and nanosecond
/// times. A dictionary for them costs a hash per value and saves nothing
/// (a trace id repeats once per span of its trace, so it keeps one); min/max
/// statistics of random ids prune nothing.
const UNIQUE_COLUMNS: [&str; 5] = [
    col::SPAN_ID,
    col::PARENT_SPAN_ID,
    col::START_TIME,
    col::END_TIME,
    col::DURATION_NS,
];

/// How span files are written (public for the benches, which weigh it
/// against plain settings).
pub fn writer_props() -> WriterProperties {
    let mut b =
        WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default()));
    for c in UNIQUE_COLUMNS {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    // Time statistics stay: they let a time-range query skip row groups.
    for c in [col::SPAN_ID, col::PARENT_SPAN_ID] {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    b.build()
}

/// Writes under a temporary name, then renames.
pub(super) fn write_plain(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let file = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut writer = ArrowWriter::try_new(file, span_schema(), Some(writer_props()))?;
    for b in batches {
        writer.write(b)?;
    }
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// [`SpanStore::scan`] over a listing taken earlier (`files` and
/// `buffered` of one tenant, as a processor snapshot hands them to a
/// reader on another thread). A file that was compacted away since is
/// skipped: its spans are in the merged file, which a later listing has.
/// Only the requested columns (and the start time, to filter on) are
/// decoded from the files.
pub fn scan_files(
    files: &[PathBuf],
    buffered: &[RecordBatch],
    from_ns: i64,
    to_ns: i64,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    let schema = span_schema();
    let project = |names: &mut dyn Iterator<Item = &str>| -> Result<SchemaRef> {
        let mut fields = Vec::new();
        for c in names {
            fields.push(schema.field_with_name(c)?.clone());
        }
        Ok(Arc::new(arrow_schema::Schema::new(fields)))
    };
    let projected = project(&mut columns.iter().copied())?;
    let read = if columns.contains(&col::START_TIME) {
        Arc::clone(&projected)
    } else {
        project(&mut columns.iter().copied().chain([col::START_TIME]))?
    };
    let mut out = Vec::new();
    for file in files {
        if let Some(h) = file.parent().and_then(parse_hour)
            && (h >= to_ns || h + HOUR_NS <= from_ns)
        {
            continue;
        }
        let batches = match read_columns(file, &read) {
            Ok(b) => b,
            Err(Error::Io { .. }) if !file.exists() => continue,
            Err(e) => return Err(e),
        };
        for b in batches {
            out.extend(select(&b, &projected, from_ns, to_ns)?);
        }
    }
    for b in buffered {
        out.extend(select(b, &projected, from_ns, to_ns)?);
    }
    Ok(out)
}

/// The rows of `batch` starting in `[from_ns, to_ns)`, projected to
/// `projected`; `None` when no row is in range.
pub(super) fn select(
    batch: &RecordBatch,
    projected: &SchemaRef,
    from_ns: i64,
    to_ns: i64,
) -> Result<Option<RecordBatch>> {
    let Some(start) = batch
        .column_by_name(col::START_TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
    else {
        return Ok(None);
    };
    let mask: BooleanArray = start
        .iter()
        .map(|t| Some(t.is_some_and(|t| t >= from_ns && t < to_ns)))
        .collect();
    if mask.true_count() == 0 {
        return Ok(None);
    }
    // Project first (Arc clones), then filter only the kept columns.
    let kept = conform(batch, projected)?;
    Ok(Some(arrow_select::filter::filter_record_batch(
        &kept, &mask,
    )?))
}

/// `batch`'s columns by name, in `schema`'s order and with its types. A
/// column the batch lacks (a file of an older schema: the span schema
/// only ever gains nullable columns) reads as nulls. Re-attaching our
/// schema also makes timezone and dictionary types compare equal
/// everywhere.
pub(super) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => Arc::clone(c),
            None => arrow_array::new_null_array(f.data_type(), n),
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Reads a span file back.
pub(crate) fn read_file(path: &Path) -> Result<Vec<RecordBatch>> {
    read_columns(path, &span_schema())
}

/// Reads the columns of `schema` from a span file; Parquet decodes no
/// other column.
pub(super) fn read_columns(path: &Path, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    // The span schema is flat: a top-level field's index is its root
    // column's.
    let wanted: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| schema.field_with_name(f.name()).is_ok())
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder.with_projection(mask).build()?;
    reader.map(|b| conform(&b?, schema)).collect()
}

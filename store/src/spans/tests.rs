use std::sync::Arc;

use arrow_array::types::UInt32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, FixedSizeBinaryArray, Int8Array, Int64Array, StringArray,
    TimestampNanosecondArray, UInt32Array, new_null_array,
};

use super::*;
use causeway_model::schema::span_schema;

/// A span batch with `starts` (ns) and every optional column null.
fn batch(tenant: &str, starts: &[i64]) -> RecordBatch {
    let n = starts.len();
    let schema = span_schema();
    let dict = |v: &str| -> ArrayRef {
        Arc::new(DictionaryArray::<UInt32Type>::new(
            UInt32Array::from(vec![0u32; n]),
            Arc::new(StringArray::from(vec![v])),
        ))
    };
    let ids = |len: i32, seed: u8| -> ArrayRef {
        let values: Vec<Vec<u8>> = (0..n)
            .map(|i| vec![seed.wrapping_add(i as u8) | 1; len as usize])
            .collect();
        Arc::new(FixedSizeBinaryArray::try_from_iter(values.into_iter()).expect("ids"))
    };
    let ts = |v: Vec<i64>| -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            col::TENANT => dict(tenant),
            col::TRACE_ID => ids(16, 1),
            col::SPAN_ID => ids(8, 2),
            col::SERVICE_NAME => dict("checkout"),
            col::SPAN_NAME => dict("GET /"),
            col::SPAN_KIND | col::STATUS_CODE => {
                Arc::new(Int8Array::from(vec![2i8; n])) as ArrayRef
            }
            col::START_TIME => ts(starts.to_vec()),
            col::END_TIME => ts(starts.iter().map(|s| s + 1000).collect()),
            col::DURATION_NS => Arc::new(Int64Array::from(vec![1000i64; n])) as ArrayRef,
            _ => new_null_array(f.data_type(), n),
        })
        .collect();
    RecordBatch::try_new(schema, columns).expect("batch")
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("causeway-spans-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn rows(store: &SpanStore, tenant: &TenantId) -> usize {
    store
        .files(tenant)
        .expect("files")
        .iter()
        .flat_map(|f| read_file(f).expect("read"))
        .map(|b| b.num_rows())
        .sum()
}

const H: i64 = HOUR_NS;

#[test]
fn batches_are_buffered_split_by_hour_written_and_read_back() {
    let dir = scratch("write");
    let acme = TenantId::new("acme").expect("tenant");
    let mut store = SpanStore::open(&dir, SpanStoreSettings { flush_rows: 1000 }).expect("open");
    let base = 481_000 * H; // 2024-11-14T16:00Z
    store
        .append(&acme, batch("acme", &[base + 5, base + H - 1, base + H]))
        .expect("append");
    assert_eq!(store.buffered(&acme).len(), 1);
    assert!(store.files(&acme).expect("files").is_empty());
    store.flush_and_wait().expect("flush");
    let files = store.files(&acme).expect("files");
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0]
            .to_string_lossy()
            .contains("tenant=acme/hour=2024-11-14T16"),
        "{files:?}"
    );
    assert!(
        files[1].to_string_lossy().contains("hour=2024-11-14T17"),
        "{files:?}"
    );
    assert_eq!(rows(&store, &acme), 3);
    let back = read_file(&files[0]).expect("read");
    assert_eq!(back[0].schema(), span_schema());
    // A full buffer writes on its own.
    let mut small = SpanStore::open(&dir, SpanStoreSettings { flush_rows: 2 }).expect("open");
    small
        .append(&acme, batch("acme", &[base, base + 1]))
        .expect("append");
    small.flush_and_wait().expect("written");
    assert!(small.buffered(&acme).is_empty());
    assert_eq!(rows(&small, &acme), 5);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn compaction_merges_finished_hours_and_survives_a_crash_midway() {
    let dir = scratch("compact");
    let t = TenantId::new("acme").expect("tenant");
    let mut store = SpanStore::open(&dir, SpanStoreSettings { flush_rows: 1 }).expect("open");
    let base = 481_000 * H;
    for i in 0..5 {
        store
            .append(&t, batch("acme", &[base + i, base + 10 + i]))
            .expect("append");
    }
    store
        .append(&t, batch("acme", &[base + H + 1]))
        .expect("current hour");
    store.flush_and_wait().expect("written");
    assert_eq!(store.files(&t).expect("files").len(), 6);
    assert_eq!(store.compact(&t, base + H + 30).expect("compact"), 5);
    assert_eq!(
        store.files(&t).expect("files").len(),
        2,
        "one file per hour"
    );
    assert_eq!(rows(&store, &t), 11);

    // A crash after the merged file was renamed but before the sources were
    // deleted: reopening finishes the job, without duplicates.
    for i in 0..3 {
        store
            .append(&t, batch("acme", &[base + 100 + i]))
            .expect("append");
    }
    store.flush_and_wait().expect("written");
    let hour_dir = store.tenant_dir(&t).join("hour=2024-11-14T16");
    let sources = parquet_files(&hour_dir).expect("files");
    let mut all = Vec::new();
    for f in &sources {
        all.extend(read_file(f).expect("read"));
    }
    let target = hour_dir.join("9-9-compacted.parquet");
    write_plain(&target, &all).expect("merged");
    let names: Vec<String> = sources
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    fs::write(with_suffix(&target, ".sources"), names.join("\n")).expect("sources");
    // and a stray temp file from an interrupted write
    fs::write(hour_dir.join("x.parquet.tmp"), b"partial").expect("tmp");
    let store = SpanStore::open(&dir, SpanStoreSettings::default()).expect("reopen");
    assert_eq!(rows(&store, &t), 14);
    assert_eq!(parquet_files(&hour_dir).expect("files").len(), 1);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn retention_and_tenant_deletion_remove_only_what_they_should() {
    let dir = scratch("expire");
    let (a, b) = (
        TenantId::new("acme").expect("t"),
        TenantId::new("globex").expect("t"),
    );
    let mut store = SpanStore::open(&dir, SpanStoreSettings { flush_rows: 1 }).expect("open");
    let base = 481_000 * H;
    store.append(&a, batch("acme", &[base])).expect("append");
    store
        .append(&a, batch("acme", &[base + 3 * H]))
        .expect("append");
    store.append(&b, batch("globex", &[base])).expect("append");
    store.flush_and_wait().expect("written");
    assert_eq!(store.expire(&a, base + 2 * H).expect("expire"), 1);
    assert_eq!(rows(&store, &a), 1);
    assert_eq!(rows(&store, &b), 1, "other tenants keep theirs");
    assert_eq!(
        store.tenants().expect("tenants"),
        vec![a.clone(), b.clone()]
    );
    store.delete_tenant(&a).expect("delete");
    assert_eq!(rows(&store, &a), 0);
    assert!(!store.tenant_dir(&a).exists());
    assert_eq!(rows(&store, &b), 1);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn hour_labels_round_trip() {
    for h in [0i64, 1, 481_000, 500_123] {
        let start = h * H;
        let dir = PathBuf::from(format!("hour={}", hour_label(start)));
        assert_eq!(parse_hour(&dir), Some(start), "{}", hour_label(start));
    }
    assert_eq!(hour_label(0), "1970-01-01T00");
}

#[test]
fn spans_in_flight_to_the_writer_stay_visible_exactly_once() {
    let dir = scratch("flight");
    let tenant = TenantId::new("acme").expect("tenant");
    let mut store = SpanStore::open(&dir, SpanStoreSettings { flush_rows: 1 }).expect("open");
    let b = batch(
        "acme",
        &[1_764_000_000_000_000_000, 1_764_000_000_100_000_000],
    );
    for i in 1..=20 {
        store.append(&tenant, b.clone()).expect("append");
        // Whatever the writer has finished so far, files plus buffered
        // (including files in flight) hold every span exactly once.
        let buffered: usize = store.buffered(&tenant).iter().map(|b| b.num_rows()).sum();
        assert_eq!(
            rows(&store, &tenant) + buffered,
            i * b.num_rows(),
            "after {i} appends"
        );
    }
    store.flush_and_wait().expect("flush");
    assert!(store.buffered(&tenant).is_empty());
    assert_eq!(rows(&store, &tenant), 20 * b.num_rows());
    assert_eq!(store.files(&tenant).expect("files").len(), 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_past_the_saved_log_mark_are_discarded_and_the_rest_kept() {
    let dir = scratch("wal-mark");
    let acme = TenantId::new("acme").expect("tenant");
    let base = 481_000 * H;
    let at = |offset: u64| Some(Position { segment: 1, offset });
    let mut store = SpanStore::open(&dir, SpanStoreSettings { flush_rows: 1000 }).expect("open");
    // Written before the log existed: never discarded.
    store.append(&acme, batch("acme", &[base])).expect("append");
    store.flush_and_wait().expect("flush");
    // Two batches up to position 1.200, saved with the mark 1.200.
    store
        .append_logged(&acme, batch("acme", &[base + 1]), at(100))
        .expect("append");
    store
        .append_logged(&acme, batch("acme", &[base + 2, base + 3]), at(200))
        .expect("append");
    store.flush_and_wait().expect("flush");
    // Written after the mark, by a row-count flush, before a crash.
    store
        .append_logged(&acme, batch("acme", &[base + 4]), at(300))
        .expect("append");
    store.flush_and_wait().expect("flush");
    assert_eq!(rows(&store, &acme), 5);
    let names: Vec<String> = store
        .files(&acme)
        .expect("files")
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("-w1.200.parquet")),
        "{names:?}"
    );
    drop(store);
    let mut store = SpanStore::open(&dir, SpanStoreSettings::default()).expect("reopen");
    assert_eq!(store.discard_after(at(200)).expect("discard"), 1);
    assert_eq!(rows(&store, &acme), 4, "the file past the mark went");
    // No mark yet: everything the log holds replays, so every logged file goes.
    assert_eq!(store.discard_after(None).expect("discard"), 1);
    assert_eq!(rows(&store, &acme), 1);
    let _ = fs::remove_dir_all(&dir);
}

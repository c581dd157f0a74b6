//! Spans as Parquet files, per tenant and hour.
//!
//! Layout: `<root>/tenant=<t>/hour=<YYYY-MM-DDTHH>/<n>.parquet`, hive-style so
//! the tenant and hour are visible in every path. Batches are buffered per
//! tenant and written when a tenant holds `flush_rows` spans, on
//! [`SpanStore::flush`] (periodic, and on shutdown). Files are written under a
//! temporary name and renamed, so a reader never sees half a file.
//!
//! Compaction merges the files of an hour that is over into one; it writes
//! the merged file, records which files it replaces, renames, then deletes
//! them, and [`SpanStore::open`] finishes a compaction a crash interrupted,
//! so spans are neither lost nor duplicated. Retention deletes whole hours.
//!
//! With a write-ahead log, each file's name ends with the log position of
//! the last batch in it (`…-w<segment>.<offset>.parquet`). The processor
//! saves its mark only after every buffer is written, so at start the files
//! past the saved mark hold exactly spans that the log replays:
//! [`SpanStore::discard_after`] deletes them, and the replay writes them
//! again, once.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{BooleanArray, RecordBatch};
use causeway_model::TenantId;
use causeway_model::schema::col;

use crate::error::{Error, Result};
use crate::queue::Position;

mod parquet;

pub(crate) use parquet::read_file;
use parquet::write_plain;
pub use parquet::{scan_files, writer_props};

const HOUR_NS: i64 = 3_600_000_000_000;

/// Settings of a [`SpanStore`].
#[derive(Debug, Clone, Copy)]
pub struct SpanStoreSettings {
    /// Spans buffered per tenant before a file is written.
    pub flush_rows: usize,
}

impl Default for SpanStoreSettings {
    fn default() -> Self {
        Self { flush_rows: 65_536 }
    }
}

/// A file being written by the writer thread: its batches stay visible to
/// queries (as buffered) until the file is renamed into place, which
/// happens on the owner's thread in [`SpanStore::poll`], so a query sees
/// each span exactly once.
#[derive(Debug)]
struct Pending {
    tenant: TenantId,
    /// Where the writer writes.
    tmp: PathBuf,
    /// Where the file goes when written.
    path: PathBuf,
    batches: Vec<RecordBatch>,
    /// The tenant was deleted while this was in flight: discard it.
    deleted: bool,
}

/// Work for the writer thread.
struct Job {
    id: u64,
    tmp: PathBuf,
    batches: Vec<RecordBatch>,
}

/// Files queued to the writer thread at most; beyond, `flush` waits (the
/// writer's pace is the disk's).
const WRITE_QUEUE: usize = 4;

/// Parquet span files under one directory. Encoding and writing happen on a
/// writer thread of its own, so the caller (the processor) only splits
/// batches by hour and hands them over.
#[derive(Debug)]
pub struct SpanStore {
    root: PathBuf,
    settings: SpanStoreSettings,
    /// Per tenant: batches, their rows, and the log position of the last.
    buffers: HashMap<TenantId, (Vec<RecordBatch>, usize, Option<Position>)>,
    seq: u64,
    pending: std::collections::BTreeMap<u64, Pending>,
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    done: std::sync::mpsc::Receiver<(u64, Result<()>)>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Writes that failed (they are retried).
    pub write_failures: u64,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("tmp", &self.tmp)
            .finish_non_exhaustive()
    }
}

impl Drop for SpanStore {
    fn drop(&mut self) {
        // Closing the queue ends the writer once its queue is empty.
        self.jobs = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl SpanStore {
    /// Opens `root`, finishing any compaction a crash interrupted.
    pub fn open(root: &Path, settings: SpanStoreSettings) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(WRITE_QUEUE);
        let (done_tx, done) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("causeway-span-writer".into())
            .spawn(move || {
                for job in rx {
                    let result = write_plain(&job.tmp, &job.batches);
                    if done_tx.send((job.id, result)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io(root, e))?;
        let store = Self {
            root: root.to_owned(),
            settings,
            buffers: HashMap::new(),
            seq: 0,
            pending: std::collections::BTreeMap::new(),
            jobs: Some(jobs),
            done,
            writer: Some(writer),
            write_failures: 0,
        };
        for tenant_dir in read_dirs(root)? {
            for hour_dir in read_dirs(&tenant_dir)? {
                store.recover(&hour_dir)?;
            }
        }
        Ok(store)
    }

    /// The directory of one tenant's spans (it may not exist yet).
    pub fn tenant_dir(&self, tenant: &TenantId) -> PathBuf {
        self.root.join(format!("tenant={}", tenant.as_str()))
    }

    /// Buffers a batch (span schema) of `tenant`; writes when enough is buffered.
    pub fn append(&mut self, tenant: &TenantId, batch: RecordBatch) -> Result<()> {
        self.append_logged(tenant, batch, None)
    }

    /// [`SpanStore::append`] of a batch whose request ends at `logged` in
    /// the write-ahead log.
    pub fn append_logged(
        &mut self,
        tenant: &TenantId,
        batch: RecordBatch,
        logged: Option<Position>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let entry = self.buffers.entry(tenant.clone()).or_default();
        entry.1 += batch.num_rows();
        entry.0.push(batch);
        entry.2 = entry.2.max(logged);
        if entry.1 >= self.settings.flush_rows {
            self.flush_tenant(tenant)?;
        }
        self.poll()
    }

    /// Batches of `tenant` not yet written (queries read them too).
    pub fn buffered(&self, tenant: &TenantId) -> Vec<RecordBatch> {
        let mut out: Vec<RecordBatch> = self
            .pending
            .values()
            .filter(|p| &p.tenant == tenant && !p.deleted)
            .flat_map(|p| p.batches.iter().cloned())
            .collect();
        if let Some((b, _, _)) = self.buffers.get(tenant) {
            out.extend(b.iter().cloned());
        }
        out
    }

    /// Moves written files into place (and retries failed writes); cheap
    /// when nothing finished. Call it often from the owning thread.
    pub fn poll(&mut self) -> Result<()> {
        let mut first_error = None;
        while let Ok((id, result)) = self.done.try_recv() {
            if let Err(e) = self.finish(id, result) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn finish(&mut self, id: u64, result: Result<()>) -> Result<()> {
        let Some(p) = self.pending.remove(&id) else {
            return Ok(());
        };
        if p.deleted {
            let _ = fs::remove_file(&p.tmp);
            return Ok(());
        }
        match result {
            Ok(()) => fs::rename(&p.tmp, &p.path).map_err(|e| Error::io(&p.path, e)),
            Err(e) => {
                self.write_failures += 1;
                let _ = fs::remove_file(&p.tmp);
                // The hour was expired or the tenant deleted meanwhile:
                // nothing to keep.
                if p.path.parent().is_some_and(Path::exists) {
                    self.send(id, p)?;
                }
                Err(e)
            }
        }
    }

    fn send(&mut self, id: u64, p: Pending) -> Result<()> {
        let job = Job {
            id,
            tmp: p.tmp.clone(),
            batches: p.batches.clone(),
        };
        self.pending.insert(id, p);
        match &self.jobs {
            Some(tx) => tx.send(job).map_err(|_| {
                Error::io(
                    &self.root,
                    std::io::Error::other("the span writer thread has stopped"),
                )
            }),
            None => Ok(()),
        }
    }

    /// Writes every buffer and waits until every file is in place.
    pub fn flush_and_wait(&mut self) -> Result<()> {
        self.flush()?;
        let mut first_error = None;
        let mut failures_here = 0;
        while !self.pending.is_empty() {
            let Ok((id, result)) = self.done.recv() else {
                break;
            };
            if let Err(e) = self.finish(id, result) {
                failures_here += 1;
                first_error.get_or_insert(e);
                // A disk that keeps failing must not hold shutdown forever.
                if failures_here > 3 * self.pending.len().max(1) {
                    break;
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes every buffer.
    pub fn flush(&mut self) -> Result<()> {
        let tenants: Vec<TenantId> = self.buffers.keys().cloned().collect();
        for t in tenants {
            self.flush_tenant(&t)?;
        }
        Ok(())
    }

    fn flush_tenant(&mut self, tenant: &TenantId) -> Result<()> {
        let Some((batches, _, logged)) = self.buffers.remove(tenant) else {
            return Ok(());
        };
        // Split by the hour each span starts in.
        let mut by_hour: HashMap<i64, Vec<RecordBatch>> = HashMap::new();
        for batch in &batches {
            for (hour, part) in split_by_hour(batch)? {
                by_hour.entry(hour).or_default().push(part);
            }
        }
        for (hour, parts) in by_hour {
            let dir = self
                .tenant_dir(tenant)
                .join(format!("hour={}", hour_label(hour)));
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            self.seq += 1;
            let name = match logged {
                Some(p) => format!("{}-{}-w{p}.parquet", now_ms(), self.seq),
                None => format!("{}-{}.parquet", now_ms(), self.seq),
            };
            let path = dir.join(&name);
            let pending = Pending {
                tenant: tenant.clone(),
                tmp: with_suffix(&path, ".tmp"),
                path,
                batches: parts,
                deleted: false,
            };
            self.send(self.seq, pending)?;
        }
        Ok(())
    }

    /// Every Parquet file of `tenant`.
    pub fn files(&self, tenant: &TenantId) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let dir = self.tenant_dir(tenant);
        if !dir.exists() {
            return Ok(out);
        }
        for hour in read_dirs(&dir)? {
            out.extend(parquet_files(&hour)?);
        }
        out.sort();
        Ok(out)
    }

    /// The spans of `tenant` that start in `[from_ns, to_ns)`, written or
    /// buffered, with only `columns` (in that order). Hours outside the
    /// range are not opened. A column a file lacks (written by an older
    /// causeway) reads as nulls.
    pub fn scan(
        &self,
        tenant: &TenantId,
        from_ns: i64,
        to_ns: i64,
        columns: &[&str],
    ) -> Result<Vec<RecordBatch>> {
        scan_files(
            &self.files(tenant)?,
            &self.buffered(tenant),
            from_ns,
            to_ns,
            columns,
        )
    }

    /// Merges the files of each finished hour (`hour end <= before_ns`) into
    /// one. Returns how many files were merged away.
    pub fn compact(&mut self, tenant: &TenantId, before_ns: i64) -> Result<usize> {
        let dir = self.tenant_dir(tenant);
        if !dir.exists() {
            return Ok(0);
        }
        let mut merged = 0;
        for hour_dir in read_dirs(&dir)? {
            let Some(start) = parse_hour(&hour_dir) else {
                continue;
            };
            if start + HOUR_NS > before_ns {
                continue;
            }
            let files = parquet_files(&hour_dir)?;
            if files.len() < 2 {
                continue;
            }
            let mut batches = Vec::new();
            for f in &files {
                batches.extend(read_file(f)?);
            }
            self.seq += 1;
            let target = hour_dir.join(format!("{}-{}-compacted.parquet", now_ms(), self.seq));
            let tmp = with_suffix(&target, ".tmp");
            write_plain(&tmp, &batches)?;
            // Record what the new file replaces before it becomes visible.
            let sources = with_suffix(&target, ".sources");
            let list: Vec<String> = files
                .iter()
                .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            fs::write(&sources, list.join("\n")).map_err(|e| Error::io(&sources, e))?;
            fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
            self.recover(&hour_dir)?;
            merged += files.len();
        }
        Ok(merged)
    }

    /// Completes or rolls back an interrupted compaction in `hour_dir`.
    fn recover(&self, hour_dir: &Path) -> Result<()> {
        for entry in fs::read_dir(hour_dir).map_err(|e| Error::io(hour_dir, e))? {
            let path = entry.map_err(|e| Error::io(hour_dir, e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(target) = name.strip_suffix(".sources") {
                if hour_dir.join(target).exists() {
                    // The merged file is in place: the sources go.
                    let list = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                    for source in list.lines().filter(|l| !l.is_empty()) {
                        let p = hour_dir.join(source);
                        if p.exists() {
                            fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                        }
                    }
                }
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            } else if name.ends_with(".tmp") {
                // A write that never completed; its data is still in the
                // sources (compaction) or was never acknowledged as stored.
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Deletes the hours of `tenant` that ended before `before_ns`.
    pub fn expire(&mut self, tenant: &TenantId, before_ns: i64) -> Result<usize> {
        let dir = self.tenant_dir(tenant);
        if !dir.exists() {
            return Ok(0);
        }
        let mut n = 0;
        for hour_dir in read_dirs(&dir)? {
            if parse_hour(&hour_dir).is_some_and(|start| start + HOUR_NS <= before_ns) {
                fs::remove_dir_all(&hour_dir).map_err(|e| Error::io(&hour_dir, e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes every file written from log records after `mark` (every
    /// logged file when there is no mark): the log replays their spans.
    /// Call at start, before the replay. Returns how many files went.
    pub fn discard_after(&mut self, mark: Option<Position>) -> Result<usize> {
        let mut n = 0;
        for tenant_dir in read_dirs(&self.root)? {
            for hour_dir in read_dirs(&tenant_dir)? {
                for file in parquet_files(&hour_dir)? {
                    let logged = file
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .and_then(logged_of);
                    if logged.is_some_and(|p| mark.is_none_or(|m| p > m)) {
                        fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }

    /// Tenants with files or buffers.
    pub fn tenants(&self) -> Result<Vec<TenantId>> {
        let mut out: Vec<TenantId> = self.buffers.keys().cloned().collect();
        for dir in read_dirs(&self.root)? {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(t) = name
                .strip_prefix("tenant=")
                .and_then(|t| TenantId::new(t).ok())
            {
                out.push(t);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Deletes every span of `tenant`, buffered or written.
    pub fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()> {
        self.buffers.remove(tenant);
        // Files in flight are dropped when they finish (see `finish`).
        for p in self.pending.values_mut() {
            if &p.tenant == tenant {
                p.deleted = true;
            }
        }
        let dir = self.tenant_dir(tenant);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(())
    }
}

/// The log position in a file stem `…-w<segment>.<offset>`.
fn logged_of(stem: &str) -> Option<Position> {
    stem.rsplit_once("-w")?.1.parse().ok()
}

fn now_ms() -> i64 {
    causeway_model::time::now_ns() / 1_000_000
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_type().map_err(|e| Error::io(dir, e))?.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// `YYYY-MM-DDTHH` (UTC) of an hour start.
fn hour_label(start_ns: i64) -> String {
    let mut s = causeway_model::time::rfc3339(start_ns);
    s.truncate(13);
    s
}

/// The hour start of an `hour=YYYY-MM-DDTHH` directory.
fn parse_hour(dir: &Path) -> Option<i64> {
    let label = dir.file_name()?.to_str()?.strip_prefix("hour=")?;
    if label.len() != 13 {
        return None;
    }
    causeway_model::time::parse_rfc3339(&format!("{label}:00:00Z"))
}

/// Splits a batch by the hour its spans start in.
fn split_by_hour(batch: &RecordBatch) -> Result<Vec<(i64, RecordBatch)>> {
    let start = batch
        .column_by_name(col::START_TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| Error::Corrupt("span batch without start_time".into()))?;
    let hour = |i: usize| start.value(i).div_euclid(HOUR_NS) * HOUR_NS;
    let first = hour(0);
    if (1..start.len()).all(|i| hour(i) == first) {
        return Ok(vec![(first, batch.clone())]);
    }
    let mut hours: Vec<i64> = (0..start.len()).map(hour).collect();
    hours.sort_unstable();
    hours.dedup();
    let mut out = Vec::new();
    for h in hours {
        let mask: BooleanArray = (0..start.len()).map(|i| Some(hour(i) == h)).collect();
        out.push((h, arrow_select::filter::filter_record_batch(batch, &mask)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

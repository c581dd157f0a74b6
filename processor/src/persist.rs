//! What the processor keeps across restarts: series cells and the catalog in
//! a [`Store`] (DuckDB by default), spans in a [`SpanStore`].
//!
//! The stage hands it changed cells at each checkpoint and spans as they are
//! converted; this module owns the timing of writes, compaction and expiry,
//! and keeps serving when the disk fails (errors are logged and counted; the
//! data stays in memory and is written at the next checkpoint).
//!
//! With a write-ahead log ([`Persistence::attach_wal`]) every checkpoint
//! writes all buffered spans first, then cells and catalog with the log
//! mark (the position after the last batch they hold) in one transaction,
//! then releases the log up to the mark. A crash at any point leaves
//! stores that hold exactly the batches before the saved mark; the log
//! holds the rest, and span files past the mark are discarded at start.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use std::sync::Arc;

use causeway_model::{LogPosition, TenantId};
use causeway_store::wal::Wal;
use causeway_store::{
    CellRow, DuckDbStore, Family, PgStore, ServiceRow, SpanStore, SpanStoreSettings, StateRow,
    Store,
};

use crate::config::StorageSettings;
use crate::series::{DirtyCell, Resolution, SeriesKey};

/// How often finished hours are compacted and expired hours deleted.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(600);
/// How often detection state (baselines, signatures, anomalies, incidents)
/// is saved; also at shutdown. A crash loses at most this much learning.
const STATE_INTERVAL: Duration = Duration::from_secs(60);

/// The processor's persistence.
pub struct Persistence {
    store: Box<dyn Store>,
    spans: SpanStore,
    settings: StorageSettings,
    last_checkpoint: Instant,
    last_flush: Instant,
    last_maintenance: Instant,
    last_state: Instant,
    /// The write-ahead log this persistence releases, when there is one.
    wal: Option<Arc<Wal>>,
    /// The log position the stores held at start.
    start_mark: Option<LogPosition>,
    /// Each tenant's retention horizon at its last prune.
    pruned: std::collections::HashMap<TenantId, [i64; 3]>,
    /// Failed writes (the disk's fault); data stays in memory meanwhile.
    pub failures: u64,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("data_dir", &self.settings.data_dir)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl Persistence {
    /// Opens the store (PostgreSQL when configured, else the DuckDB file
    /// under the data directory) and the span directory.
    pub fn open(settings: StorageSettings) -> causeway_store::Result<Self> {
        let store: Box<dyn Store> = match &settings.postgres {
            Some(pg) => Box::new(PgStore::connect(pg)?),
            None => Box::new(DuckDbStore::open(
                &settings.data_dir.join("causeway.duckdb"),
            )?),
        };
        let spans = SpanStore::open(
            &settings.data_dir.join("spans"),
            SpanStoreSettings {
                flush_rows: settings.span_flush_rows,
            },
        )?;
        Ok(Self::new(store, spans, settings))
    }

    /// Uses `store` (a PostgreSQL store sharing the process's client) and
    /// the span directory under the data directory.
    pub fn with_store(
        store: Box<dyn Store>,
        settings: StorageSettings,
    ) -> causeway_store::Result<Self> {
        let spans = SpanStore::open(
            &settings.data_dir.join("spans"),
            SpanStoreSettings {
                flush_rows: settings.span_flush_rows,
            },
        )?;
        Ok(Self::new(store, spans, settings))
    }

    /// Uses the given stores.
    pub fn new(store: Box<dyn Store>, spans: SpanStore, settings: StorageSettings) -> Self {
        let now = Instant::now();
        Self {
            store,
            spans,
            settings,
            last_checkpoint: now,
            last_flush: now,
            last_maintenance: now,
            last_state: now,
            wal: None,
            start_mark: None,
            pruned: std::collections::HashMap::new(),
            failures: 0,
        }
    }

    /// Releases `wal` at each checkpoint. Returns the saved mark (the
    /// log's records after it are what the stores do not hold, to be
    /// replayed) after deleting the span files written past it.
    pub fn attach_wal(&mut self, wal: Arc<Wal>) -> causeway_store::Result<Option<LogPosition>> {
        // Records before the log's head were released by a checkpoint that
        // saved them, even when this store has no mark (a new instance
        // name, a new backend): files up to the head hold released records
        // and stay; only those past it are replayed.
        let mark = self.store.wal_mark()?.max(Some(wal.head()));
        let discarded = self.spans.discard_after(mark)?;
        if discarded > 0 {
            tracing::info!(
                files = discarded,
                "span files past the last checkpoint discarded; the write-ahead log replays them"
            );
        }
        self.wal = Some(wal);
        self.start_mark = mark;
        Ok(mark)
    }

    /// The log position the stores held at start (what a checkpoint saves
    /// again until a batch moves it).
    pub fn start_mark(&self) -> Option<LogPosition> {
        self.start_mark
    }

    /// Everything stored: cells, catalog and state documents.
    pub fn load(&self) -> causeway_store::Result<(Vec<CellRow>, Vec<ServiceRow>, Vec<StateRow>)> {
        Ok((
            self.store.load_cells()?,
            self.store.load_services()?,
            self.store.load_state()?,
        ))
    }

    /// Whether state documents are due (or `force`, at shutdown).
    pub fn state_due(&self, force: bool) -> bool {
        force || self.last_state.elapsed() >= STATE_INTERVAL
    }

    /// Saves state documents.
    pub fn save_state(&mut self, rows: &[StateRow]) {
        self.last_state = Instant::now();
        if let Err(e) = self.store.save_state(rows) {
            self.failures += 1;
            tracing::error!(error = %e, "cannot save detection state; will retry");
        }
    }

    /// The span store (for queries).
    pub fn spans(&self) -> &SpanStore {
        &self.spans
    }

    /// Buffers converted spans of a request that ends at `logged` in the
    /// write-ahead log.
    pub fn append_spans(
        &mut self,
        tenant: &TenantId,
        batch: RecordBatch,
        logged: Option<LogPosition>,
    ) {
        if let Err(e) = self.spans.append_logged(tenant, batch, logged) {
            self.failures += 1;
            tracing::error!(%tenant, error = %e, "cannot write spans");
        }
    }

    /// Moves span files the writer finished into place.
    pub fn poll(&mut self) {
        if let Err(e) = self.spans.poll() {
            self.failures += 1;
            tracing::error!(error = %e, "cannot write spans; will retry");
        }
    }

    /// Whether a checkpoint is due.
    pub fn checkpoint_due(&self) -> bool {
        self.last_checkpoint.elapsed() >= self.settings.checkpoint_interval
    }

    /// Before a checkpoint takes its rows: with a write-ahead log, writes
    /// every span buffer and waits, since the mark the checkpoint saves
    /// says the spans before it are on disk. `false` when they could not
    /// all be written: the checkpoint must then be skipped (its rows stay
    /// in memory, the log keeps every record after the last mark, and a
    /// crash replays them into the stores as they were at that mark).
    pub fn prepare_checkpoint(&mut self) -> bool {
        if self.wal.is_none() {
            return true;
        }
        self.last_flush = Instant::now();
        match self.spans.flush_and_wait() {
            Ok(()) => true,
            Err(e) => {
                self.failures += 1;
                tracing::error!(error = %e, "checkpoint skipped: spans could not be written; the write-ahead log keeps every record since the last one");
                false
            }
        }
    }

    /// Writes changed cells and catalog rows, prunes cells past retention,
    /// and (when due) flushes spans and runs maintenance. `mark` is the log
    /// position after the last batch whose effects the cells hold. Call
    /// [`Persistence::prepare_checkpoint`] first. Returns whether the
    /// checkpoint was saved.
    pub fn checkpoint(
        &mut self,
        cells: Vec<CellRow>,
        services: Vec<ServiceRow>,
        horizons: Vec<(TenantId, [i64; 3])>,
        force: bool,
        mark: Option<LogPosition>,
    ) -> bool {
        self.last_checkpoint = Instant::now();
        let logged = self.wal.is_some();
        // Without a log, spans are written on their own schedule.
        if !logged && (force || self.last_flush.elapsed() >= self.settings.span_flush_interval) {
            self.last_flush = Instant::now();
            // At shutdown, wait until every file is in place.
            let flushed = if force {
                self.spans.flush_and_wait()
            } else {
                self.spans.flush()
            };
            if let Err(e) = flushed {
                self.failures += 1;
                tracing::error!(error = %e, "cannot write spans; will retry");
            }
        }
        // Cells and catalog in one transaction: a crash between them
        // would leave the catalog behind the series.
        let mark = mark.filter(|_| logged);
        let result = self
            .store
            .save_checkpoint(&cells, &services, mark)
            .and_then(|()| {
                // Only tenants whose horizon moved since their last prune:
                // an idle tenant costs nothing per checkpoint.
                let moved: Vec<(TenantId, [i64; 3])> = horizons
                    .into_iter()
                    .filter(|(t, h)| self.pruned.get(t) != Some(h))
                    .collect();
                let n = self.store.prune_cells(&moved)?;
                self.pruned.extend(moved);
                Ok(n)
            });
        let saved = match result {
            Ok(_) => {
                if let (Some(wal), Some(mark)) = (&self.wal, mark)
                    && let Err(e) = wal.release(mark)
                {
                    self.failures += 1;
                    tracing::error!(error = %e, "cannot release the write-ahead log; will retry");
                }
                true
            }
            Err(e) => {
                self.failures += 1;
                tracing::error!(error = %e, cells = cells.len(), "checkpoint failed; will retry");
                false
            }
        };
        // With a log, compaction only right after a saved checkpoint, when
        // every span file is at or before the saved mark: a merged file
        // carries no log position, so it must hold nothing a replay adds.
        if (saved || !logged) && self.last_maintenance.elapsed() >= MAINTENANCE_INTERVAL {
            self.last_maintenance = Instant::now();
            self.maintain();
        }
        saved
    }

    /// Starts a new write-ahead log segment (before a tenant's deletion:
    /// the checkpoint that follows then frees the segment holding the
    /// tenant's records).
    pub fn roll_wal(&self) -> causeway_store::Result<()> {
        match &self.wal {
            Some(wal) => wal.roll().map_err(|source| causeway_store::Error::Io {
                path: "write-ahead log".into(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// Whether a write-ahead log is attached.
    pub fn has_wal(&self) -> bool {
        self.wal.is_some()
    }

    /// Compacts finished hours and deletes hours past each tenant's retention.
    pub fn maintain(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let tenants = match self.spans.tenants() {
            Ok(t) => t,
            Err(e) => {
                self.failures += 1;
                tracing::error!(error = %e, "cannot list span directories");
                return;
            }
        };
        for tenant in tenants {
            let keep =
                i64::try_from(self.settings.retention_of(&tenant).as_nanos()).unwrap_or(i64::MAX);
            // Hours are compacted once they are over and no late span is
            // likely to add a file: one hour after their end.
            let result = self
                .spans
                .expire(&tenant, now.saturating_sub(keep))
                .and_then(|_| self.spans.compact(&tenant, now - 3_600_000_000_000));
            if let Err(e) = result {
                self.failures += 1;
                tracing::error!(%tenant, error = %e, "span maintenance failed");
            }
        }
    }

    /// Deletes every trace of a tenant.
    pub fn delete_tenant(&mut self, tenant: &TenantId) -> causeway_store::Result<()> {
        self.pruned.remove(tenant);
        self.store.delete_tenant(tenant)?;
        self.spans.delete_tenant(tenant)
    }
}

/// A changed cell as a stored row.
pub(crate) fn to_row<K: SeriesKey>(tenant: &TenantId, family: Family, c: DirtyCell<K>) -> CellRow {
    let (a, b, kc, kd) = c.key.parts();
    CellRow {
        tenant: tenant.clone(),
        family,
        a: a.to_owned(),
        b: b.to_owned(),
        c: kc,
        d: kd,
        resolution: c.resolution.code(),
        start_ns: c.start_ns,
        calls: c.calls,
        errors: c.errors,
        hist: c.hist,
        handed_on: c.handed_on,
    }
}

/// A stored row as a cell to restore (None if it makes no valid key).
pub(crate) fn from_row<K: SeriesKey>(r: CellRow) -> Option<DirtyCell<K>> {
    Some(DirtyCell {
        key: K::from_parts(&r.a, &r.b, r.c, r.d)?,
        resolution: Resolution::from_code(r.resolution)?,
        start_ns: r.start_ns,
        calls: r.calls,
        errors: r.errors,
        hist: r.hist,
        handed_on: r.handed_on,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_store::{CellRow, Family};

    fn cell(tenant: &str, start_ns: i64) -> CellRow {
        CellRow {
            tenant: TenantId::new(tenant).expect("tenant"),
            family: Family::Red,
            a: "checkout".into(),
            b: "POST /orders".into(),
            c: 2,
            d: 0,
            resolution: 0,
            start_ns,
            calls: 1,
            errors: 0,
            hist: vec![1],
            handed_on: true,
        }
    }

    #[test]
    fn each_tenant_is_pruned_on_its_own_horizon_and_an_idle_one_holds_nobody_back() {
        let dir = std::env::temp_dir().join(format!("causeway-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut p = Persistence::open(StorageSettings::new(dir.clone())).expect("open");
        let (busy, idle) = (
            TenantId::new("busy").expect("tenant"),
            TenantId::new("idle").expect("tenant"),
        );
        p.checkpoint(
            vec![cell("busy", 10), cell("busy", 200), cell("idle", 10)],
            Vec::new(),
            Vec::new(),
            false,
            None,
        );
        // The busy tenant's event time moved on; the idle one's did not.
        p.checkpoint(
            Vec::new(),
            Vec::new(),
            vec![(busy.clone(), [100, 0, 0]), (idle.clone(), [0, 0, 0])],
            false,
            None,
        );
        let mut left: Vec<(String, i64)> = p
            .store
            .load_cells()
            .expect("load")
            .into_iter()
            .map(|c| (c.tenant.as_str().to_owned(), c.start_ns))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [("busy".to_owned(), 200), ("idle".to_owned(), 10)],
            "the busy tenant's old cell went, the idle tenant kept its own"
        );
        assert_eq!(p.pruned.get(&busy), Some(&[100, 0, 0]));
        assert_eq!(p.failures, 0);
        drop(p);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

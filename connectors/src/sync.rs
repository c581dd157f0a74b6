//! Incremental sync of one connector: per stream, a pass over everything
//! updated since the cursor (minus an overlap), page by page. Each page is
//! committed with the cursor that resumes after it, in one transaction; a
//! complete pass moves the cursor to the newest update seen (never to
//! "now", which would skip what the system indexes late). A failed page
//! leaves the cursor where the last committed page put it.

use causeway_model::TenantId;
use causeway_store::SignalStore;

use crate::error::{Error, Result};
use crate::mapping::ServiceMapper;
use crate::{Connector, time};

/// Sync settings.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// Re-read this much before the cursor (clock skew, late indexing).
    pub overlap_ns: i64,
    /// How far back the first sync reads.
    pub lookback_ns: i64,
    /// Pages per stream per sync at most (the rest continues next time).
    pub max_pages: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            overlap_ns: 5 * 60_000_000_000,
            lookback_ns: 7 * 24 * 3_600_000_000_000,
            max_pages: 1_000,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Pages read.
    pub pages: usize,
    /// Records read (including ones seen before).
    pub records: usize,
    /// Records new to the store.
    pub new: usize,
    /// Streams that failed, with the error.
    pub failed: Vec<(String, String)>,
    /// Pages read per stream.
    pub stream_pages: Vec<(String, usize)>,
}

/// The persisted cursor of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Cursor {
    /// Start of the current (or next) pass.
    since_ns: i64,
    /// Page to resume a pass at.
    #[serde(default)]
    next: Option<String>,
    /// Newest update seen in the current pass.
    #[serde(default)]
    max_ns: i64,
}

/// Syncs every stream of `connector` for `tenant` into `store`. A stream
/// that fails is reported and the others go on.
pub async fn sync_connector<S: SignalStore + ?Sized>(
    connector: &dyn Connector,
    tenant: &TenantId,
    store: &tokio::sync::Mutex<S>,
    mapper: &ServiceMapper,
    settings: SyncSettings,
) -> SyncReport {
    let mut report = SyncReport::default();
    for stream in connector.streams() {
        if let Err(e) = sync_stream(
            connector,
            tenant,
            &stream,
            store,
            mapper,
            settings,
            &mut report,
        )
        .await
        {
            tracing::warn!(
                connector = connector.name(),
                %tenant,
                stream,
                error = %e,
                "stream sync failed; its cursor stays"
            );
            report.failed.push((stream, e.to_string()));
        }
    }
    report
}

async fn sync_stream<S: SignalStore + ?Sized>(
    connector: &dyn Connector,
    tenant: &TenantId,
    stream: &str,
    store: &tokio::sync::Mutex<S>,
    mapper: &ServiceMapper,
    settings: SyncSettings,
    report: &mut SyncReport,
) -> Result<()> {
    let name = connector.name();
    let saved = store.lock().await.cursor(tenant, name, stream)?;
    let mut cursor = match saved {
        Some(text) => serde_json::from_str::<Cursor>(&text).map_err(|e| Error::Config {
            connector: name.to_owned(),
            message: format!("stored cursor of {stream} unreadable ({e}); delete it to resync"),
        })?,
        None => Cursor {
            since_ns: time::now_ns().saturating_sub(settings.lookback_ns),
            next: None,
            max_ns: 0,
        },
    };
    let from = cursor.since_ns.saturating_sub(settings.overlap_ns);
    for _ in 0..settings.max_pages {
        let page = match connector
            .page(tenant, stream, from, cursor.next.as_deref())
            .await
        {
            Ok(p) => p,
            // A stale resume point (page tokens expire): restart the pass.
            Err(Error::Upstream { .. }) if cursor.next.is_some() => {
                tracing::info!(
                    connector = name,
                    stream,
                    "resume point refused; restarting the pass"
                );
                cursor.next = None;
                connector.page(tenant, stream, from, None).await?
            }
            Err(e) => return Err(e),
        };
        let mut signals = Vec::with_capacity(page.items.len());
        for item in page.items {
            let mut s = item.signal;
            if s.tenant != *tenant {
                return Err(Error::Upstream {
                    system: connector.system(),
                    url: stream.to_owned(),
                    message: format!("a record of tenant {} in a sync of {tenant}", s.tenant),
                });
            }
            s.services = mapper.services(&item.hints);
            cursor.max_ns = cursor.max_ns.max(s.updated_ns);
            signals.push(s);
        }
        report.pages += 1;
        match report.stream_pages.last_mut() {
            Some((s, n)) if s == stream => *n += 1,
            _ => report.stream_pages.push((stream.to_owned(), 1)),
        }
        report.records += signals.len();
        cursor.next = page.next;
        let done = cursor.next.is_none();
        let next_cursor = if done {
            Cursor {
                since_ns: cursor.max_ns.max(cursor.since_ns),
                next: None,
                max_ns: 0,
            }
        } else {
            cursor.clone()
        };
        let text = serde_json::to_string(&next_cursor).map_err(|e| Error::Config {
            connector: name.to_owned(),
            message: e.to_string(),
        })?;
        report.new +=
            store
                .lock()
                .await
                .commit_page(tenant, &signals, Some((name, stream, &text)))?;
        if done {
            return Ok(());
        }
    }
    Ok(())
}

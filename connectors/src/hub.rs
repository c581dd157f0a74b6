//! The signal hub: what `serve` runs for signals. It owns the signal store,
//! syncs every configured source on its schedule, takes verified webhooks
//! and deploy events, and answers signal queries, always per tenant.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use causeway_model::{Signal, TenantId};
use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};
use http::HeaderMap;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken as Cancel;

use crate::config::{ConnectorsConfig, SourceConfig};
use crate::error::{Error, Result};
use crate::http::RetryPolicy;
use crate::mapping::ServiceMapper;
use crate::oauth::TokenStore;
use crate::secret::{SealKey, Secret, Vault};
use crate::sync::{SyncReport, SyncSettings, sync_connector};
use crate::webhook::{self, Parsed, Source, WebhookError};
use crate::{Connector, time};

/// A built connector and the tenant it reads for.
pub type TenantConnector = (TenantId, Box<dyn Connector>);

/// Runs one source's sync loop and restarts it when its task fails:
/// after 1 s, doubling to at most the sync interval, so a source that
/// fails on every run costs one attempt per interval.
async fn supervise(
    hub: Arc<SignalHub>,
    tenant: TenantId,
    c: Arc<dyn Connector>,
    known: Arc<dyn KnownServices>,
    cancel: Cancel,
) {
    let ceiling = hub.sync_period();
    let mut wait = Duration::from_secs(1);
    loop {
        let run = tokio::spawn(Arc::clone(&hub).sync_loop(
            tenant.clone(),
            Arc::clone(&c),
            Arc::clone(&known),
            cancel.clone(),
        ));
        match run.await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(%tenant, connector = c.name(), error = %e, retry_in = ?wait,
                    "connector task failed; restarting it");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(ceiling);
    }
}

/// Where the hub learns which services a tenant's traces name (for
/// matching repositories and projects to services).
#[async_trait::async_trait]
pub trait KnownServices: Send + Sync + std::fmt::Debug {
    /// Service names seen in `tenant`'s traces.
    async fn services(&self, tenant: &TenantId) -> Vec<String>;
}

/// No services known (tests, `connectors sync` without a server).
#[derive(Debug, Default)]
pub struct NoServices;

#[async_trait::async_trait]
impl KnownServices for NoServices {
    async fn services(&self, _tenant: &TenantId) -> Vec<String> {
        Vec::new()
    }
}

/// What a webhook request came to.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    /// Stored this many records (new or updated).
    Stored(usize),
    /// Slack's URL verification: echo this.
    Challenge(String),
}

/// Why a webhook or deploy event was not taken.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No such source for this tenant (404: existence is not revealed).
    #[error("no such webhook")]
    Unknown,
    /// Verification failed (401) or the payload is wrong (400).
    #[error(transparent)]
    Refused(#[from] WebhookError),
    /// Storing failed (503).
    #[error(transparent)]
    Store(#[from] Error),
}

struct Hook {
    source: Source,
    secret: Secret,
}

/// Delivery ids remembered per webhook, for replays of schemes that sign
/// no timestamp.
const REMEMBERED_DELIVERIES: usize = 10_000;

/// The header that names one delivery of `source`.
fn delivery_header(source: Source) -> Option<&'static str> {
    match source {
        Source::GitHub => Some("x-github-delivery"),
        Source::GitLab => Some("x-gitlab-event-uuid"),
        Source::Jira => Some("x-atlassian-webhook-identifier"),
        Source::Linear => Some("linear-delivery"),
        // Signed timestamps bound replays of these.
        Source::Slack | Source::Deploy => None,
    }
}

/// Recent delivery ids of one webhook.
#[derive(Default)]
struct Deliveries {
    order: std::collections::VecDeque<String>,
    ids: std::collections::HashSet<String>,
}

/// Renewed OAuth tokens, sealed in the signal store.
struct SealedTokens {
    store: Arc<Mutex<dyn SignalStore>>,
    key: Arc<SealKey>,
}

#[async_trait::async_trait]
impl TokenStore for SealedTokens {
    async fn load(&self, tenant: &TenantId, name: &str) -> Result<Option<Secret>> {
        let mut store = self.store.lock().await;
        Vault::open(&mut *store, &self.key).find(tenant, name)
    }

    async fn save(&self, tenant: &TenantId, name: &str, value: &Secret) -> Result<()> {
        let mut store = self.store.lock().await;
        Vault::open(&mut *store, &self.key).put(tenant, name, value)
    }
}

/// Sources, store and webhook secrets of every tenant.
pub struct SignalHub {
    store: Arc<Mutex<dyn SignalStore>>,
    config: ConnectorsConfig,
    seal_key: Option<Arc<SealKey>>,
    hooks: HashMap<(TenantId, String), Hook>,
    deploy_secrets: HashMap<TenantId, Secret>,
    deliveries: std::sync::Mutex<HashMap<(TenantId, String), Deliveries>>,
    /// Where syncs, seals and key rotations are recorded.
    audit: Arc<dyn causeway_model::AuditSink>,
}

impl std::fmt::Debug for SignalHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalHub")
            .field("sources", &self.config.sources.len())
            .field("webhooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl SignalHub {
    /// Opens the store at `path` and reads every webhook secret (a missing
    /// one is an error now, not at the first delivery).
    pub fn open(path: &Path, config: ConnectorsConfig) -> Result<Self> {
        Self::with_store(DuckDbSignals::open(path)?, config)
    }

    /// A hub over an already open store (DuckDB or PostgreSQL).
    pub fn with_store<S: SignalStore + 'static>(
        store: S,
        config: ConnectorsConfig,
    ) -> Result<Self> {
        let seal_key = config
            .seal_key
            .as_ref()
            .map(SealKey::from_ref)
            .transpose()?
            .map(Arc::new);
        let mut hub = Self {
            store: Arc::new(Mutex::new(store)) as Arc<Mutex<dyn SignalStore>>,
            config,
            seal_key,
            hooks: HashMap::new(),
            deploy_secrets: HashMap::new(),
            deliveries: std::sync::Mutex::new(HashMap::new()),
            audit: Arc::new(causeway_model::NoAudit),
        };
        let mut hooks = HashMap::new();
        for s in &hub.config.sources {
            let Some(source) = s.system.webhook() else {
                continue;
            };
            let tenant = s.tenant_id()?;
            if let Some(secret) = s.webhook_secret(&|t, n| hub.sealed_now(t, n))? {
                hooks.insert((tenant, s.name.clone()), Hook { source, secret });
            }
        }
        let mut deploy = HashMap::new();
        for d in &hub.config.deploy_secrets {
            let tenant = TenantId::new(&d.tenant).map_err(|e| Error::Config {
                connector: "deploy_secrets".into(),
                message: e.to_string(),
            })?;
            deploy.insert(tenant, d.secret.resolve()?);
        }
        hub.hooks = hooks;
        hub.deploy_secrets = deploy;
        Ok(hub)
    }

    /// A sealed credential, opened (blocking on the store: setup only).
    fn sealed_now(&self, tenant: &TenantId, name: &str) -> Result<Secret> {
        let key = self.seal_key.as_ref().ok_or_else(|| Error::Credential {
            name: format!("sealed:{name}"),
            message: "no connectors.seal_key configured".into(),
        })?;
        let mut store = self
            .store
            .try_lock()
            .map_err(|_| Error::Seal("store busy".into()))?;
        Vault::open(&mut *store, key).get(tenant, name)
    }

    /// Builds every configured connector; failures (a missing credential)
    /// are returned beside the ones that built.
    pub fn connectors(&self, policy: RetryPolicy) -> (Vec<TenantConnector>, Vec<(String, Error)>) {
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for s in &self.config.sources {
            match self.build(s, policy) {
                Ok(c) => ok.push(c),
                Err(e) => failed.push((format!("{}/{}", s.tenant, s.name), e)),
            }
        }
        (ok, failed)
    }

    fn build(
        &self,
        s: &SourceConfig,
        policy: RetryPolicy,
    ) -> Result<(TenantId, Box<dyn Connector>)> {
        let tenant = s.tenant_id()?;
        let tokens = self.seal_key.as_ref().map(|key| {
            Arc::new(SealedTokens {
                store: Arc::clone(&self.store),
                key: Arc::clone(key),
            }) as Arc<dyn TokenStore>
        });
        let c = s.build(policy, &|t, n| self.sealed_now(t, n), tokens)?;
        Ok((tenant, c))
    }

    fn settings(&self) -> SyncSettings {
        SyncSettings {
            lookback_ns: i64::try_from(self.config.lookback.as_nanos()).unwrap_or(i64::MAX),
            ..SyncSettings::default()
        }
    }

    /// Records connector syncs, seals and key rotations in `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn causeway_model::AuditSink>) -> Self {
        self.audit = audit;
        self
    }

    /// Records one connector action of `tenant` (`None`: every tenant's,
    /// a key rotation) in the audit trail.
    pub fn audit(&self, tenant: Option<&TenantId>, action: &str, ok: bool, detail: String) {
        self.audit.record(causeway_model::AuditEvent {
            at_ns: causeway_model::time::now_ns(),
            tenant: tenant.cloned(),
            action: action.into(),
            outcome: if ok {
                causeway_model::AuditOutcome::Success
            } else {
                causeway_model::AuditOutcome::Failure
            },
            actor: causeway_model::Actor::system(),
            detail,
        });
    }

    /// One sync of every source; returns each source's report.
    pub async fn sync_once(
        &self,
        connectors: &[TenantConnector],
        known: &dyn KnownServices,
    ) -> Vec<(String, SyncReport)> {
        let mut out = Vec::new();
        for (tenant, c) in connectors {
            let report = self.sync_source(tenant, c.as_ref(), known).await;
            out.push((format!("{tenant}/{}", c.name()), report));
        }
        out
    }

    /// One sync of one source, logged.
    async fn sync_source(
        &self,
        tenant: &TenantId,
        c: &dyn Connector,
        known: &dyn KnownServices,
    ) -> SyncReport {
        let mapper = ServiceMapper::new(self.config.mapping.clone(), known.services(tenant).await);
        let report = sync_connector(c, tenant, &self.store, &mapper, self.settings()).await;
        tracing::info!(
            %tenant,
            connector = c.name(),
            pages = report.pages,
            records = report.records,
            new = report.new,
            failed = report.failed.len(),
            "connector synced"
        );
        self.audit(
            Some(tenant),
            "connector.sync",
            report.failed.is_empty(),
            format!(
                "connector={} records={} new={} failed_streams={}",
                c.name(),
                report.records,
                report.new,
                report.failed.len()
            ),
        );
        report
    }

    /// How often each source syncs: the configured interval, at least 10 s.
    fn sync_period(&self) -> Duration {
        self.config.interval.max(Duration::from_secs(10))
    }

    /// Syncs every source each `interval` until `cancel` fires, each on a
    /// task of its own: a slow source does not delay the others, and a
    /// source whose task fails (a panic on a payload nobody foresaw) is
    /// restarted after a back-off while the others go on.
    pub async fn run(self: Arc<Self>, known: Arc<dyn KnownServices>, cancel: Cancel) {
        let (connectors, failed) = self.connectors(RetryPolicy::default());
        for (name, e) in failed {
            tracing::error!(connector = name, error = %e, "connector not started");
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (tenant, c) in connectors {
            let c: Arc<dyn Connector> = Arc::from(c);
            tasks.spawn(supervise(
                Arc::clone(&self),
                tenant,
                c,
                Arc::clone(&known),
                cancel.clone(),
            ));
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Syncs one source every `interval` until `cancel`.
    async fn sync_loop(
        self: Arc<Self>,
        tenant: TenantId,
        c: Arc<dyn Connector>,
        known: Arc<dyn KnownServices>,
        cancel: Cancel,
    ) {
        let mut tick = tokio::time::interval(self.sync_period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.sync_source(&tenant, c.as_ref(), known.as_ref()) => {}
            }
        }
    }

    /// A webhook delivery for `tenant`'s source `name`: verified, read and
    /// stored, or refused storing nothing.
    pub async fn webhook(
        &self,
        tenant: &TenantId,
        name: &str,
        headers: &HeaderMap,
        body: &[u8],
        known: &dyn KnownServices,
    ) -> Result<WebhookOutcome, HookError> {
        let hook = self
            .hooks
            .get(&(tenant.clone(), name.to_owned()))
            .ok_or(HookError::Unknown)?;
        let now = time::now_ns();
        webhook::verify(
            hook.source,
            &hook.secret,
            headers,
            body,
            now / 1_000_000_000,
        )?;
        let key = (tenant.clone(), name.to_owned());
        let delivery = delivery_header(hook.source)
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(id) = &delivery {
            let seen = self
                .deliveries
                .lock()
                .map_err(|_| Error::Seal("delivery log poisoned".into()))?;
            if seen.get(&key).is_some_and(|d| d.ids.contains(id)) {
                return Err(WebhookError::Replay.into());
            }
        }
        let event = ["x-github-event", "x-gitlab-event"]
            .iter()
            .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()));
        let outcome = match webhook::parse(hook.source, name, tenant, event, body, now)? {
            Parsed::Challenge(c) => WebhookOutcome::Challenge(c),
            Parsed::Items(items) => {
                WebhookOutcome::Stored(self.store_items(tenant, items, known).await?)
            }
        };
        // Remembered once stored: a delivery that failed to store may be
        // redelivered with the same id.
        if let Some(id) = delivery
            && let Ok(mut seen) = self.deliveries.lock()
        {
            let d = seen.entry(key).or_default();
            if d.ids.insert(id.clone()) {
                d.order.push_back(id);
                while d.order.len() > REMEMBERED_DELIVERIES {
                    if let Some(old) = d.order.pop_front() {
                        d.ids.remove(&old);
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// A generic deploy event of `tenant` (already authenticated by API
    /// key); when the tenant has a deploy secret, it must be signed too.
    pub async fn deploy_event(
        &self,
        tenant: &TenantId,
        headers: &HeaderMap,
        body: &[u8],
        known: &dyn KnownServices,
    ) -> Result<Signal, HookError> {
        let now = time::now_ns();
        if let Some(secret) = self.deploy_secrets.get(tenant) {
            webhook::verify(Source::Deploy, secret, headers, body, now / 1_000_000_000)?;
        }
        let Parsed::Items(items) =
            webhook::parse(Source::Deploy, "deploy", tenant, None, body, now)?
        else {
            return Err(WebhookError::Payload("not a deploy event".into()).into());
        };
        let signal = items.first().map(|i| i.signal.clone());
        self.store_items(tenant, items, known).await?;
        signal.ok_or_else(|| WebhookError::Payload("empty".into()).into())
    }

    async fn store_items(
        &self,
        tenant: &TenantId,
        items: Vec<crate::Item>,
        known: &dyn KnownServices,
    ) -> Result<usize> {
        let mapper = ServiceMapper::new(self.config.mapping.clone(), known.services(tenant).await);
        let signals: Vec<Signal> = items
            .into_iter()
            .map(|i| {
                let mut s = i.signal;
                s.services = mapper.services(&i.hints);
                s
            })
            .collect();
        self.store
            .lock()
            .await
            .commit_page(tenant, &signals, None)?;
        Ok(signals.len())
    }

    /// Signals of `tenant`.
    pub async fn signals(&self, tenant: &TenantId, q: &SignalQuery) -> Result<Vec<Signal>> {
        Ok(self.store.lock().await.signals(tenant, q)?)
    }

    /// Deletes everything of one tenant.
    pub async fn delete_tenant(&self, tenant: &TenantId) -> Result<()> {
        Ok(self.store.lock().await.delete_tenant(tenant)?)
    }

    /// Deletes signals not changed since `before_ns` (retention).
    pub async fn prune(&self, before_ns: i64) -> Result<u64> {
        Ok(self.store.lock().await.prune_before(before_ns)?)
    }

    /// Seals a credential for `tenant` under the configured key.
    pub async fn seal(&self, tenant: &TenantId, name: &str, value: &Secret) -> Result<()> {
        let key = self
            .seal_key
            .as_ref()
            .ok_or_else(|| Error::Seal("no connectors.seal_key configured".into()))?;
        let mut store = self.store.lock().await;
        let sealed = Vault::open(&mut *store, key).put(tenant, name, value);
        // The credential's name, never its value.
        self.audit(
            Some(tenant),
            "connector.seal",
            sealed.is_ok(),
            format!("name={name}"),
        );
        sealed
    }

    /// Re-seals every stored credential under `new`.
    pub async fn rotate(&self, new: &SealKey) -> Result<usize> {
        let key = self
            .seal_key
            .as_ref()
            .ok_or_else(|| Error::Seal("no connectors.seal_key configured".into()))?;
        let mut store = self.store.lock().await;
        let rotated = Vault::open(&mut *store, key).rotate(new);
        let detail = match &rotated {
            Ok(n) => format!("resealed={n}"),
            Err(e) => e.to_string(),
        };
        self.audit(None, "connector.rotate", rotated.is_ok(), detail);
        rotated
    }
}

#[cfg(test)]
mod tests;

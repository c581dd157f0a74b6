//! The signal store: normalized commits, deploys, tickets and messages per
//! tenant, the connectors' sync cursors, and sealed (encrypted) credentials.
//!
//! Its own DuckDB file, apart from the processor's: connectors write here
//! from their own tasks and must never wait on a series checkpoint.
//!
//! A page of signals and the cursor that follows it are committed in one
//! transaction, so a crash between pages resumes from the last committed
//! page: nothing is skipped, and what is fetched twice replaces itself
//! (records are keyed by tenant, source and external id).

use std::path::Path;

use causeway_model::redact::redact;
use causeway_model::{Signal, SignalKind, TenantId};
use duckdb::{Connection, OptionalExt, params};

use crate::SignalStore;
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS signals (
    tenant        VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    external_id   VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    url           VARCHAR,
    title         VARCHAR NOT NULL,
    body          VARCHAR NOT NULL,
    author        VARCHAR,
    created_ns    BIGINT  NOT NULL,
    updated_ns    BIGINT  NOT NULL,
    repository    VARCHAR,
    changed_paths VARCHAR NOT NULL,
    services      VARCHAR NOT NULL,
    status        VARCHAR,
    version       VARCHAR,
    commit_sha    VARCHAR,
    PRIMARY KEY (tenant, source, external_id)
);
-- One row per (signal, service) it concerns: the service filter's index.
CREATE TABLE IF NOT EXISTS signal_services (
    tenant      VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    service     VARCHAR NOT NULL,
    PRIMARY KEY (tenant, source, external_id, service)
);
CREATE TABLE IF NOT EXISTS sync_cursors (
    tenant     VARCHAR NOT NULL,
    connector  VARCHAR NOT NULL,
    stream     VARCHAR NOT NULL,
    cursor     VARCHAR NOT NULL,
    updated_ns BIGINT  NOT NULL,
    PRIMARY KEY (tenant, connector, stream)
);
-- Credentials sealed with AES-256-GCM by the connectors crate; the key
-- never comes here.
CREATE TABLE IF NOT EXISTS sealed_secrets (
    tenant VARCHAR NOT NULL,
    name   VARCHAR NOT NULL,
    key_id VARCHAR NOT NULL,
    sealed BLOB    NOT NULL,
    PRIMARY KEY (tenant, name)
);
";

/// What `signals` returns.
#[derive(Debug, Clone, Default)]
pub struct SignalQuery {
    /// Only this kind.
    pub kind: Option<SignalKind>,
    /// Only signals concerning this service.
    pub service: Option<String>,
    /// `created_ns >= from_ns`.
    pub from_ns: Option<i64>,
    /// `created_ns < to_ns`.
    pub to_ns: Option<i64>,
    /// At most this many, newest first (0: no limit).
    pub limit: usize,
}

/// A sync cursor to store with a page: `(connector, stream, cursor)`.
pub type CursorUpdate<'a> = (&'a str, &'a str, &'a str);

/// A sealed credential as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRow {
    /// Whose.
    pub tenant: TenantId,
    /// Which credential (`github.token`).
    pub name: String,
    /// Id of the key that sealed it.
    pub key_id: String,
    /// Nonce and ciphertext.
    pub sealed: Vec<u8>,
}

/// DuckDB-backed signal store.
pub struct DuckDbSignals {
    conn: Connection,
    /// The file (`None` in memory): rewritten after a tenant's deletion.
    path: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for DuckDbSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDbSignals").finish_non_exhaustive()
    }
}

use causeway_model::time::now_ns;

impl DuckDbSignals {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: crate::open::connect(Some(path), SCHEMA)?,
            path: Some(path.to_path_buf()),
        })
    }

    /// An in-memory store (tests, `connectors check`).
    pub fn in_memory() -> Result<Self> {
        Ok(Self {
            conn: crate::open::connect(None, SCHEMA)?,
            path: None,
        })
    }
}

impl SignalStore for DuckDbSignals {
    /// Inserts or replaces `signals` and, in the same transaction, moves
    /// `cursor` of `tenant` forward. Returns how many signals were new.
    fn commit_page(
        &mut self,
        tenant: &TenantId,
        signals: &[Signal],
        cursor: Option<CursorUpdate<'_>>,
    ) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut new = 0;
        for s in signals {
            if s.tenant != *tenant {
                return Err(Error::Corrupt(format!(
                    "a signal of tenant {} in a page of tenant {tenant}",
                    s.tenant
                )));
            }
            let existed: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM signals WHERE tenant = ? AND source = ? AND external_id = ?",
                    params![tenant.as_str(), s.source, s.external_id],
                    |r| r.get(0),
                )
                .optional()?;
            new += usize::from(existed.is_none());
            let json = |v: &Vec<String>| {
                serde_json::to_string(v).map_err(|e| Error::Corrupt(e.to_string()))
            };
            // Stored redacted: e-mail addresses and tokens in a ticket's
            // text never reach the API, notifications or an LLM prompt.
            tx.execute(
                "INSERT OR REPLACE INTO signals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    tenant.as_str(),
                    s.source,
                    s.external_id,
                    s.kind.as_str(),
                    s.url.as_deref().map(redact),
                    redact(&s.title),
                    redact(&s.body),
                    s.author.as_deref().map(redact),
                    s.created_ns,
                    s.updated_ns,
                    s.repository,
                    json(&s.changed_paths)?,
                    json(&s.services)?,
                    s.status,
                    s.version,
                    s.commit,
                ],
            )?;
            tx.execute(
                "DELETE FROM signal_services WHERE tenant = ? AND source = ? AND external_id = ?",
                params![tenant.as_str(), s.source, s.external_id],
            )?;
            for service in &s.services {
                tx.execute(
                    "INSERT OR IGNORE INTO signal_services VALUES (?, ?, ?, ?)",
                    params![tenant.as_str(), s.source, s.external_id, service],
                )?;
            }
        }
        if let Some((connector, stream, value)) = cursor {
            tx.execute(
                "INSERT OR REPLACE INTO sync_cursors VALUES (?, ?, ?, ?, ?)",
                params![tenant.as_str(), connector, stream, value, now_ns()],
            )?;
        }
        tx.commit()?;
        Ok(new)
    }

    /// The stored cursor of one stream of a connector.
    fn cursor(&self, tenant: &TenantId, connector: &str, stream: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT cursor FROM sync_cursors WHERE tenant = ? AND connector = ? AND stream = ?",
                params![tenant.as_str(), connector, stream],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Signals of `tenant` matching `q`, newest first.
    fn signals(&self, tenant: &TenantId, q: &SignalQuery) -> Result<Vec<Signal>> {
        let mut sql = String::from(
            "SELECT s.source, s.external_id, s.kind, s.url, s.title, s.body, s.author, \
             s.created_ns, s.updated_ns, s.repository, s.changed_paths, s.services, \
             s.status, s.version, s.commit_sha FROM signals s WHERE s.tenant = ?",
        );
        let mut args: Vec<Box<dyn duckdb::ToSql>> = vec![Box::new(tenant.as_str().to_owned())];
        if let Some(k) = q.kind {
            sql.push_str(" AND s.kind = ?");
            args.push(Box::new(k.as_str().to_owned()));
        }
        if let Some(service) = &q.service {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM signal_services x WHERE x.tenant = s.tenant \
                 AND x.source = s.source AND x.external_id = s.external_id AND x.service = ?)",
            );
            args.push(Box::new(service.clone()));
        }
        if let Some(from) = q.from_ns {
            sql.push_str(" AND s.created_ns >= ?");
            args.push(Box::new(from));
        }
        if let Some(to) = q.to_ns {
            sql.push_str(" AND s.created_ns < ?");
            args.push(Box::new(to));
        }
        sql.push_str(" ORDER BY s.created_ns DESC, s.source, s.external_id");
        if q.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", q.limit));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let params: Vec<&dyn duckdb::ToSql> = args.iter().map(|b| b.as_ref()).collect();
        let rows = stmt.query_map(params.as_slice(), |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ),
                (
                    r.get::<_, i64>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                    r.get::<_, Option<String>>(12)?,
                    r.get::<_, Option<String>>(13)?,
                    r.get::<_, Option<String>>(14)?,
                ),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                (source, external_id, kind, url, title, body, author),
                (created_ns, updated_ns, repository, paths, services, status, version, commit),
            ) = row?;
            let list = |s: &str| {
                serde_json::from_str::<Vec<String>>(s).map_err(|e| Error::Corrupt(e.to_string()))
            };
            out.push(Signal {
                tenant: tenant.clone(),
                kind: SignalKind::parse(&kind)
                    .ok_or_else(|| Error::Corrupt(format!("unknown signal kind {kind}")))?,
                source,
                external_id,
                url,
                title,
                body,
                author,
                created_ns,
                updated_ns,
                repository,
                changed_paths: list(&paths)?,
                services: list(&services)?,
                status,
                version,
                commit,
            });
        }
        Ok(out)
    }

    /// Stores a sealed credential (replacing one of the same name).
    fn put_sealed(&mut self, row: &SealedRow) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO sealed_secrets VALUES (?, ?, ?, ?)",
            params![row.tenant.as_str(), row.name, row.key_id, row.sealed],
        )?;
        Ok(())
    }

    /// One sealed credential.
    fn sealed(&self, tenant: &TenantId, name: &str) -> Result<Option<SealedRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT key_id, sealed FROM sealed_secrets WHERE tenant = ? AND name = ?",
                params![tenant.as_str(), name],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?
            .map(|(key_id, sealed)| SealedRow {
                tenant: tenant.clone(),
                name: name.to_owned(),
                key_id,
                sealed,
            }))
    }

    /// Every sealed credential (key rotation re-seals them all).
    fn all_sealed(&self) -> Result<Vec<SealedRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT tenant, name, key_id, sealed FROM sealed_secrets ORDER BY tenant, name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (tenant, name, key_id, sealed) = row?;
            out.push(SealedRow {
                tenant: TenantId::new(&tenant).map_err(|e| Error::Corrupt(e.to_string()))?,
                name,
                key_id,
                sealed,
            });
        }
        Ok(out)
    }

    /// Replaces every sealed credential in one transaction (rotation: all
    /// are under the new key, or none is).
    fn replace_all_sealed(&mut self, rows: &[SealedRow]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for row in rows {
            tx.execute(
                "INSERT OR REPLACE INTO sealed_secrets VALUES (?, ?, ?, ?)",
                params![row.tenant.as_str(), row.name, row.key_id, row.sealed],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes signals not changed since `before_ns` (retention) with their
    /// service links; returns how many signals.
    fn prune_before(&mut self, before_ns: i64) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM signals WHERE updated_ns < ?",
            params![before_ns],
        )?;
        tx.execute(
            "DELETE FROM signal_services WHERE NOT EXISTS
               (SELECT 1 FROM signals s WHERE s.tenant = signal_services.tenant
                  AND s.source = signal_services.source
                  AND s.external_id = signal_services.external_id)",
            [],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// Deletes everything of one tenant.
    fn delete_tenant(&mut self, tenant: &TenantId) -> Result<()> {
        let tx = self.conn.transaction()?;
        for table in [
            "signals",
            "signal_services",
            "sync_cursors",
            "sealed_secrets",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = ?"),
                params![tenant.as_str()],
            )?;
        }
        tx.commit()?;
        if let Some(path) = &self.path {
            crate::open::rewrite(&mut self.conn, path, SCHEMA)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(tenant: &str, id: &str, kind: SignalKind, at: i64, services: &[&str]) -> Signal {
        Signal {
            tenant: TenantId::new(tenant).expect("tenant"),
            kind,
            source: "github".into(),
            external_id: id.into(),
            url: Some(format!("https://github.com/acme/shop/commit/{id}")),
            title: format!("change {id}"),
            body: String::new(),
            author: Some("mona".into()),
            created_ns: at,
            updated_ns: at,
            repository: Some("acme/shop".into()),
            changed_paths: vec!["checkout/src/main.rs".into()],
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            status: None,
            version: None,
            commit: Some(id.into()),
        }
    }

    #[test]
    fn a_deleted_tenant_leaves_no_bytes_in_the_file() {
        let dir =
            std::env::temp_dir().join(format!("causeway-signals-purge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("signals.duckdb");
        let mut s = DuckDbSignals::open(&path).expect("open");
        let acme = TenantId::new("acmepurgecheck").expect("tenant");
        let globex = TenantId::new("globexkept").expect("tenant");
        let page: Vec<Signal> = (0..500)
            .map(|i| {
                let mut sig = signal(
                    "acmepurgecheck",
                    &format!("a{i}"),
                    SignalKind::Commit,
                    i,
                    &["checkout"],
                );
                sig.title = format!("acmesecretcommit number {i}");
                sig
            })
            .collect();
        s.commit_page(&acme, &page, None).expect("commit");
        s.commit_page(
            &globex,
            &[signal("globexkept", "g1", SignalKind::Commit, 1, &["cart"])],
            None,
        )
        .expect("commit");
        drop(s);
        let bytes = std::fs::read(&path).expect("read");
        let find = |b: &[u8], what: &[u8]| b.windows(what.len()).any(|w| w == what);
        assert!(
            find(&bytes, b"acmepurgecheck"),
            "the tenant is in the file before"
        );
        let mut s = DuckDbSignals::open(&path).expect("reopen");
        s.delete_tenant(&acme).expect("delete");
        drop(s);
        let bytes = std::fs::read(&path).expect("read");
        assert!(
            !find(&bytes, b"acmepurgecheck"),
            "no trace of the tenant's name"
        );
        assert!(!find(&bytes, b"acmesecretcommit"), "no trace of its data");
        let s = DuckDbSignals::open(&path).expect("reopen");
        assert_eq!(
            s.signals(&globex, &SignalQuery::default())
                .expect("read")
                .len(),
            1
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn retention_drops_signals_not_changed_since_the_horizon() {
        retention_drops_signals_not_changed_since_the_horizon_on(
            &mut DuckDbSignals::in_memory().expect("open"),
        );
        let pg = crate::contract::Pg(crate::contract::pg_scratch("signals", "i1"));
        retention_drops_signals_not_changed_since_the_horizon_on(&mut crate::PgSignals::new(
            pg.client(),
        ));
    }

    fn retention_drops_signals_not_changed_since_the_horizon_on(s: &mut dyn SignalStore) {
        let acme = TenantId::new("acme").expect("tenant");
        let page = vec![
            signal("acme", "old", SignalKind::Commit, 10, &["checkout"]),
            signal("acme", "new", SignalKind::Commit, 30, &["checkout"]),
        ];
        s.commit_page(&acme, &page, None).expect("commit");
        assert_eq!(s.prune_before(20).expect("prune"), 1);
        let q = SignalQuery {
            service: Some("checkout".into()),
            ..SignalQuery::default()
        };
        let left = s.signals(&acme, &q).expect("read");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].external_id, "new");
    }

    #[test]
    fn emails_and_tokens_are_redacted_before_they_are_stored() {
        emails_and_tokens_are_redacted_before_they_are_stored_on(
            &mut DuckDbSignals::in_memory().expect("open"),
        );
        let pg = crate::contract::Pg(crate::contract::pg_scratch("signals", "i1"));
        emails_and_tokens_are_redacted_before_they_are_stored_on(&mut crate::PgSignals::new(
            pg.client(),
        ));
    }

    fn emails_and_tokens_are_redacted_before_they_are_stored_on(s: &mut dyn SignalStore) {
        let acme = TenantId::new("acme").expect("tenant");
        let mut sig = signal("acme", "t1", SignalKind::Ticket, 10, &["checkout"]);
        sig.title = "Checkout down, says jane@example.com".into();
        sig.body = "customer bob.smith@corp.example wrote; token=abc123 in the log".into();
        sig.author = Some("jane@example.com".into());
        s.commit_page(&acme, &[sig], None).expect("commit");
        let got = s.signals(&acme, &SignalQuery::default()).expect("read");
        let text = format!("{got:?}");
        assert!(!text.contains("example.com"), "{text}");
        assert!(!text.contains("corp.example"), "{text}");
        assert!(!text.contains("abc123"), "{text}");
        assert_eq!(got[0].title, "Checkout down, says <email>");
        assert_eq!(got[0].author.as_deref(), Some("<email>"));
    }

    #[test]
    fn pages_dedupe_filter_by_service_and_keep_tenants_apart() {
        pages_dedupe_filter_by_service_and_keep_tenants_apart_on(
            &mut DuckDbSignals::in_memory().expect("open"),
        );
        let pg = crate::contract::Pg(crate::contract::pg_scratch("signals", "i1"));
        pages_dedupe_filter_by_service_and_keep_tenants_apart_on(&mut crate::PgSignals::new(
            pg.client(),
        ));
    }

    fn pages_dedupe_filter_by_service_and_keep_tenants_apart_on(s: &mut dyn SignalStore) {
        let acme = TenantId::new("acme").expect("tenant");
        let globex = TenantId::new("globex").expect("tenant");
        let page = vec![
            signal("acme", "a1", SignalKind::Commit, 10, &["checkout"]),
            signal(
                "acme",
                "a2",
                SignalKind::Deploy,
                20,
                &["checkout", "payments"],
            ),
            signal("acme", "a3", SignalKind::Commit, 30, &["cart"]),
        ];
        let new = s
            .commit_page(&acme, &page, Some(("github", "commits", "c1")))
            .expect("commit");
        assert_eq!(new, 3);
        // The same records again (an overlapping poll), one changed.
        let mut again = page.clone();
        again[0].title = "change a1, amended".into();
        again[1].services = vec!["payments".into()];
        assert_eq!(s.commit_page(&acme, &again, None).expect("commit"), 0);
        s.commit_page(
            &globex,
            &[signal(
                "globex",
                "a1",
                SignalKind::Commit,
                10,
                &["checkout"],
            )],
            Some(("github", "commits", "g1")),
        )
        .expect("commit");
        let all = s.signals(&acme, &SignalQuery::default()).expect("query");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].external_id, "a3", "newest first");
        assert_eq!(all[2].title, "change a1, amended");
        let checkout = s
            .signals(
                &acme,
                &SignalQuery {
                    service: Some("checkout".into()),
                    ..SignalQuery::default()
                },
            )
            .expect("query");
        assert_eq!(
            checkout
                .iter()
                .map(|s| s.external_id.as_str())
                .collect::<Vec<_>>(),
            ["a1"],
            "a2 no longer concerns checkout"
        );
        let deploys = s
            .signals(
                &acme,
                &SignalQuery {
                    kind: Some(SignalKind::Deploy),
                    from_ns: Some(15),
                    to_ns: Some(25),
                    ..SignalQuery::default()
                },
            )
            .expect("query");
        assert_eq!(deploys.len(), 1);
        assert_eq!(
            s.cursor(&acme, "github", "commits")
                .expect("cursor")
                .as_deref(),
            Some("c1")
        );
        assert_eq!(
            s.cursor(&globex, "github", "commits")
                .expect("cursor")
                .as_deref(),
            Some("g1")
        );
        // A page of another tenant's records is refused whole.
        let err = s
            .commit_page(
                &acme,
                &[signal("globex", "x", SignalKind::Commit, 1, &[])],
                None,
            )
            .expect_err("cross-tenant page");
        assert!(err.to_string().contains("tenant globex"), "{err}");
        s.delete_tenant(&acme).expect("delete");
        assert!(
            s.signals(&acme, &SignalQuery::default())
                .expect("query")
                .is_empty()
        );
        assert_eq!(
            s.signals(&globex, &SignalQuery::default())
                .expect("q")
                .len(),
            1
        );
        assert_eq!(s.cursor(&acme, "github", "commits").expect("cursor"), None);
    }

    #[test]
    fn sealed_secrets_replace_together() {
        sealed_secrets_replace_together_on(&mut DuckDbSignals::in_memory().expect("open"));
        let pg = crate::contract::Pg(crate::contract::pg_scratch("signals", "i1"));
        sealed_secrets_replace_together_on(&mut crate::PgSignals::new(pg.client()));
    }

    fn sealed_secrets_replace_together_on(s: &mut dyn SignalStore) {
        let acme = TenantId::new("acme").expect("tenant");
        let row = |name: &str, key: &str| SealedRow {
            tenant: acme.clone(),
            name: name.into(),
            key_id: key.into(),
            sealed: vec![1, 2, 3],
        };
        s.put_sealed(&row("github.token", "k1")).expect("put");
        s.put_sealed(&row("jira.token", "k1")).expect("put");
        s.replace_all_sealed(&[row("github.token", "k2"), row("jira.token", "k2")])
            .expect("rotate");
        assert!(
            s.all_sealed()
                .expect("all")
                .iter()
                .all(|r| r.key_id == "k2")
        );
        assert_eq!(
            s.sealed(&acme, "github.token")
                .expect("get")
                .map(|r| r.key_id),
            Some("k2".into())
        );
        assert_eq!(s.sealed(&acme, "nope").expect("get"), None);
    }
}

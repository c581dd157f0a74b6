//! One test suite, two backends: every [`Store`] behaviour the processor
//! relies on, run against DuckDB (a file in a scratch directory) and
//! PostgreSQL (a schema of its own in the database every machine and CI
//! have at 127.0.0.1:5432; `CAUSEWAY_TEST_PG_URL` points elsewhere).

use std::path::PathBuf;

use causeway_model::TenantId;

use causeway_model::rca::{Feedback, RcaReport};
use causeway_model::{Actor, AuditEvent, AuditOutcome};

use crate::pg::{PgAudit, PgClient, PgReports, PgSettings, PgStore};
use crate::queue::Position;
use crate::{
    AuditStore, CellRow, DuckDbAudit, DuckDbReports, DuckDbStore, Family, ReportStore, ServiceRow,
    StateRow, Store,
};

/// Opens a store, again and again on the same data.
trait Backend {
    fn open(&self) -> Box<dyn Store>;
    fn name(&self) -> &'static str;
}

struct Duck(PathBuf);

impl Backend for Duck {
    fn open(&self) -> Box<dyn Store> {
        Box::new(DuckDbStore::open(&self.0).expect("open DuckDB"))
    }
    fn name(&self) -> &'static str {
        "duckdb"
    }
}

impl Drop for Duck {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub(crate) struct Pg(pub(crate) PgSettings);

impl Backend for Pg {
    fn open(&self) -> Box<dyn Store> {
        Box::new(PgStore::connect(&self.0).expect(
            "connect to PostgreSQL at CAUSEWAY_TEST_PG_URL or postgres://postgres@127.0.0.1:5432/test",
        ))
    }
    fn name(&self) -> &'static str {
        "postgres"
    }
}

impl Pg {
    pub(crate) fn client(&self) -> std::sync::Arc<PgClient> {
        PgClient::connect(&self.0).expect("connect to PostgreSQL")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(schema) = &self.0.schema {
            drop_schema(&self.0.url, schema);
        }
    }
}

/// The test database's URL.
pub(crate) fn pg_url() -> String {
    std::env::var("CAUSEWAY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh schema's settings for instance `instance`.
pub(crate) fn pg_scratch(tag: &str, instance: &str) -> PgSettings {
    let nanos = causeway_model::time::now_ns();
    PgSettings {
        url: pg_url(),
        instance: instance.into(),
        schema: Some(format!("t_{tag}_{}_{nanos}", std::process::id())),
    }
}

fn drop_schema(url: &str, schema: &str) {
    let Ok(rt) = crate::pg::runtime("causeway-pg-test") else {
        return;
    };
    let url = url.to_owned();
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let _ = crate::pg::wait_on(&rt, async move {
        if let Ok(pool) = sqlx::PgPool::connect(&url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
            pool.close().await;
        }
        Ok(())
    });
    rt.shutdown_background();
}

fn duck(tag: &str) -> Duck {
    let dir = std::env::temp_dir().join(format!(
        "causeway-contract-{tag}-{}-{}",
        std::process::id(),
        causeway_model::time::now_ns()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    Duck(dir.join("causeway.duckdb"))
}

/// Both backends, each on fresh data.
fn backends(tag: &str) -> Vec<Box<dyn Backend>> {
    vec![Box::new(duck(tag)), Box::new(Pg(pg_scratch(tag, "i1")))]
}

fn tenant(s: &str) -> TenantId {
    TenantId::new(s).expect("tenant")
}

fn cell(tenant_name: &str, start: i64, calls: u64) -> CellRow {
    CellRow {
        tenant: tenant(tenant_name),
        family: Family::Red,
        a: "checkout".into(),
        b: "POST /orders".into(),
        c: 2,
        d: -1,
        resolution: 0,
        start_ns: start,
        calls,
        errors: 1,
        hist: vec![1, 2, 3],
        handed_on: true,
    }
}

fn service(tenant_name: &str, spans: u64) -> ServiceRow {
    ServiceRow {
        tenant: tenant(tenant_name),
        name: "checkout".into(),
        spans,
        errors: 1,
        first_ns: 1,
        last_ns: u64::try_from(i64::MAX).expect("fits"),
    }
}

fn sorted(mut cells: Vec<CellRow>) -> Vec<CellRow> {
    cells.sort_by(|a, b| {
        (a.tenant.as_str(), a.family.as_str(), a.start_ns).cmp(&(
            b.tenant.as_str(),
            b.family.as_str(),
            b.start_ns,
        ))
    });
    cells
}

#[test]
fn a_checkpoint_saves_cells_catalog_and_the_wal_mark_together() {
    for b in backends("mark") {
        let mark = |n: u8| Position::from_bytes([n; 16]);
        {
            let mut s = b.open();
            assert_eq!(s.wal_mark().expect("mark"), None, "{}", b.name());
            s.save_checkpoint(&[cell("acme", 10, 3)], &[service("acme", 3)], Some(mark(1)))
                .expect("checkpoint");
            // A checkpoint without a log keeps the last mark.
            s.save_checkpoint(&[cell("acme", 20, 1)], &[], None)
                .expect("checkpoint");
        }
        let s = b.open();
        assert_eq!(s.wal_mark().expect("mark"), Some(mark(1)), "{}", b.name());
        assert_eq!(s.load_cells().expect("cells").len(), 2, "{}", b.name());
        assert_eq!(
            s.load_services().expect("services"),
            vec![service("acme", 3)],
            "{}",
            b.name()
        );
    }
}

#[test]
fn cells_upsert_reload_prune_and_delete_per_tenant() {
    for b in backends("cells") {
        let name = b.name();
        {
            let mut s = b.open();
            s.save_cells(&[
                cell("acme", 10, 1),
                cell("acme", 20, 2),
                cell("globex", 10, 5),
            ])
            .expect("save");
            s.save_cells(&[cell("acme", 10, 7)]).expect("replace");
            s.save_services(&[service("acme", 9)]).expect("services");
            s.save_services(&[service("acme", 11)]).expect("services");
        }
        let mut s = b.open();
        let cells = sorted(s.load_cells().expect("load"));
        assert_eq!(cells.len(), 3, "{name}");
        assert_eq!(
            cells[0],
            cell("acme", 10, 7),
            "{name}: replaced, not duplicated"
        );
        assert_eq!(s.load_services().expect("services")[0].spans, 11, "{name}");
        // Only the tenant whose horizon is given is pruned.
        assert_eq!(
            s.prune_cells(&[(tenant("globex"), [i64::MAX; 3])])
                .expect("prune"),
            1,
            "{name}"
        );
        assert_eq!(s.load_cells().expect("load").len(), 2, "{name}");
        assert_eq!(
            s.prune_cells(&[(tenant("acme"), [15, 0, 0])])
                .expect("prune"),
            1,
            "{name}"
        );
        s.save_cells(&[cell("globex", 30, 1)]).expect("save");
        s.delete_tenant(&tenant("acme")).expect("delete");
        let left = s.load_cells().expect("load");
        assert_eq!(left, vec![cell("globex", 30, 1)], "{name}");
        assert!(s.load_services().expect("services").is_empty(), "{name}");
    }
}

#[test]
fn large_checkpoints_upsert_in_bulk() {
    for b in backends("bulk") {
        let mut s = b.open();
        let rows: Vec<CellRow> = (0..20_000).map(|i| cell("acme", i, 1)).collect();
        s.save_cells(&rows).expect("save");
        let again: Vec<CellRow> = (10_000..30_000).map(|i| cell("acme", i, 2)).collect();
        s.save_cells(&again).expect("save");
        let cells = s.load_cells().expect("load");
        assert_eq!(cells.len(), 30_000, "{}", b.name());
        assert_eq!(
            cells.iter().filter(|c| c.calls == 2).count(),
            20_000,
            "{}",
            b.name()
        );
    }
}

#[test]
fn state_documents_replace_by_tenant_and_part_and_go_with_the_tenant() {
    for b in backends("state") {
        let row = |t: &str, part: &str, doc: &[u8], at: i64| StateRow {
            tenant: tenant(t),
            part: part.into(),
            state: doc.to_vec(),
            saved_ns: at,
        };
        let mut s = b.open();
        s.save_state(&[
            row("acme", "detection", b"{}", 1),
            row("globex", "detection", b"[]", 1),
        ])
        .expect("save");
        s.save_state(&[row("acme", "detection", b"{\"v\":2}", 2)])
            .expect("replace");
        assert_eq!(
            b.open().load_state().expect("load"),
            vec![
                row("acme", "detection", b"{\"v\":2}", 2),
                row("globex", "detection", b"[]", 1)
            ],
            "{}",
            b.name()
        );
        s.delete_tenant(&tenant("acme")).expect("delete");
        assert_eq!(s.load_state().expect("load").len(), 1, "{}", b.name());
    }
}

#[test]
fn postgres_instances_keep_their_own_cells_and_marks_and_a_deletion_takes_all() {
    let one = Pg(pg_scratch("instances", "i1"));
    let two = Pg(PgSettings {
        instance: "i2".into(),
        ..one.0.clone()
    });
    let mark = |n: u8| Position::from_bytes([n; 16]);
    let (mut a, mut b) = (one.open(), two.open());
    a.save_checkpoint(&[cell("acme", 10, 1)], &[service("acme", 1)], Some(mark(1)))
        .expect("a");
    b.save_checkpoint(&[cell("acme", 10, 5)], &[service("acme", 5)], Some(mark(2)))
        .expect("b");
    assert_eq!(a.load_cells().expect("a"), vec![cell("acme", 10, 1)]);
    assert_eq!(b.load_cells().expect("b"), vec![cell("acme", 10, 5)]);
    assert_eq!(a.wal_mark().expect("a"), Some(mark(1)));
    assert_eq!(b.wal_mark().expect("b"), Some(mark(2)));
    a.delete_tenant(&tenant("acme")).expect("delete");
    assert!(b.load_cells().expect("b").is_empty());
    assert!(b.load_services().expect("b").is_empty());
}

#[test]
fn a_bad_postgres_url_is_a_clear_error_without_the_password() {
    let err = PgStore::connect(&PgSettings {
        url: "postgres://causeway:hunter2@127.0.0.1:1/none".into(),
        instance: "i1".into(),
        schema: None,
    })
    .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(text.starts_with("PostgreSQL"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// `serve` opens the store from inside its runtime, and the processor drops
/// it inside its own: neither may enter or block-drop a runtime.
#[tokio::test]
async fn postgres_opens_and_closes_inside_a_runtime() {
    let pg = Pg(pg_scratch("in_runtime", "i1"));
    let mut s = pg.open();
    s.save_cells(&[cell("acme", 1, 1)]).expect("save");
    assert_eq!(s.load_cells().expect("load").len(), 1);
    drop(s);
    let bad = PgStore::connect(&PgSettings {
        url: "postgres://postgres@127.0.0.1:1/none".into(),
        instance: "i1".into(),
        schema: None,
    });
    assert!(bad.is_err());
}

fn event(tenant: Option<&str>, at_ns: i64, action: &str) -> AuditEvent {
    AuditEvent {
        at_ns,
        tenant: tenant.map(|t| TenantId::new(t).expect("tenant")),
        action: action.into(),
        outcome: AuditOutcome::Success,
        actor: Actor {
            client: Some("10.0.0.1".parse().expect("ip")),
            key_fingerprint: Some("0123456789ab".into()),
            via: "api_key".into(),
        },
        detail: "rows=3".into(),
    }
}

fn audit_contract(a: &mut dyn AuditStore, name: &str) {
    a.append(&[
        event(Some("acme"), 10, "sql.query"),
        event(Some("globex"), 11, "sql.query"),
        event(None, 12, "auth.api"),
        event(Some("acme"), 12, "rca.feedback"),
        event(Some("acme"), 12, "data.delete"),
    ])
    .expect("append");
    let acme = tenant("acme");
    let all = a.list(Some(&acme), None, 10).expect("list");
    let actions: Vec<_> = all.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(
        actions,
        ["data.delete", "rca.feedback", "sql.query"],
        "{name}"
    );
    assert_eq!(
        all[0].event,
        event(Some("acme"), 12, "data.delete"),
        "{name}"
    );
    // Pages continue after the last entry, also within one instant.
    let first = a.list(Some(&acme), None, 1).expect("page 1");
    let last = &first[0];
    let next = a
        .list(Some(&acme), Some((last.event.at_ns, last.seq)), 10)
        .expect("page 2");
    assert_eq!(next.len(), 2, "{name}");
    assert_eq!(next[0].event.action, "rca.feedback", "{name}");
    // Tenant-less events are apart.
    let system = a.list(None, None, 10).expect("system");
    assert_eq!(system.len(), 1, "{name}");
    assert_eq!(system[0].event.action, "auth.api", "{name}");
    assert_eq!(a.prune_before(11).expect("prune"), 1, "{name}");
    assert_eq!(
        a.list(Some(&acme), None, 10).expect("list").len(),
        2,
        "{name}"
    );
    assert_eq!(a.purge_tenant(&acme, i64::MAX).expect("purge"), 2, "{name}");
    assert!(
        a.list(Some(&acme), None, 10).expect("list").is_empty(),
        "{name}"
    );
}

#[test]
fn the_audit_trail_appends_lists_per_tenant_pages_prunes_and_purges() {
    audit_contract(&mut DuckDbAudit::in_memory().expect("open"), "duckdb");
    let pg = Pg(pg_scratch("audit", "i1"));
    audit_contract(&mut PgAudit::new(pg.client()), "postgres");
}

fn report(id: u64, onset: i64) -> RcaReport {
    RcaReport {
        id,
        tenant: "t".into(),
        incident: id,
        window_start_ns: onset,
        window_end_ns: onset + 1,
        reference_spans: 10,
        reference_seconds: 60,
        summary: format!("report {id}"),
        narrative: String::new(),
        narrative_by: "template".into(),
        hypotheses: Vec::new(),
        impacted_services: vec!["a".into()],
        reports: Vec::new(),
        timeline: Vec::new(),
        next_steps: Vec::new(),
        feedback: Vec::new(),
        computed_ns: onset,
        incident_updated_ns: 0,
    }
}

fn feedback(confirmed: bool) -> Feedback {
    Feedback {
        rank: 1,
        service: "x".into(),
        confirmed,
        by: "sre".into(),
        comment: None,
        at_ns: 5,
    }
}

fn reports_contract(db: &mut dyn ReportStore, name: &str) {
    let (a, b) = (tenant("a"), tenant("b"));
    db.put(&a, &report(1, 100)).expect("put");
    db.put(&a, &report(2, 200)).expect("put");
    db.put(&b, &report(1, 100)).expect("put");
    let fb = feedback(true);
    assert!(db.add_feedback(&a, 1, &fb).expect("feedback"), "{name}");
    assert!(
        !db.add_feedback(&a, 9, &fb).expect("feedback"),
        "{name}: no such report"
    );
    let mut updated = report(1, 100);
    updated.summary = "updated".into();
    db.put(&a, &updated).expect("put");
    let got = db.get(&a, 1).expect("get").expect("there");
    assert_eq!(got.summary, "updated", "{name}");
    assert_eq!(got.feedback, vec![fb.clone()], "{name}");
    assert_eq!(db.all_feedback(&a).expect("all"), vec![(1, fb)], "{name}");
    assert!(
        db.get(&b, 1)
            .expect("get")
            .is_some_and(|r| r.feedback.is_empty()),
        "{name}: tenants apart"
    );
    let list = db.list(&a, 0, i64::MAX, 0).expect("list");
    assert_eq!(
        list.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![2, 1],
        "{name}: newest first"
    );
    assert_eq!(
        db.list(&a, 0, i64::MAX, 1).expect("list").len(),
        1,
        "{name}"
    );
    // Retention drops old reports and their feedback.
    assert_eq!(db.prune_before(150).expect("prune"), 2, "{name}");
    assert!(db.get(&a, 1).expect("get").is_none(), "{name}");
    assert!(db.get(&a, 2).expect("get").is_some(), "{name}");
    // A report stored again under the old id starts without feedback.
    db.put(&a, &report(1, 400)).expect("put");
    assert!(
        db.get(&a, 1)
            .expect("get")
            .is_some_and(|r| r.feedback.is_empty()),
        "{name}"
    );
    db.delete_tenant(&a).expect("delete");
    assert!(
        db.list(&a, 0, i64::MAX, 0).expect("list").is_empty(),
        "{name}"
    );
    assert!(db.all_feedback(&a).expect("all").is_empty(), "{name}");
}

#[test]
fn reports_are_per_tenant_replaced_keep_feedback_and_expire() {
    reports_contract(&mut DuckDbReports::in_memory().expect("open"), "duckdb");
    let pg = Pg(pg_scratch("reports", "i1"));
    reports_contract(&mut PgReports::new(pg.client()), "postgres");
}

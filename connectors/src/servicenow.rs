//! ServiceNow (Table API): incidents and problems as tickets, change
//! requests as changes, incrementally on `sys_updated_on`.
//!
//! `GET /api/now/table/{table}?sysparm_query=sys_updated_on>=…^ORDERBYsys_updated_on`
//! with `sysparm_limit`/`sysparm_offset`, following `Link: rel="next"`.
//! Values come back as strings, times as `YYYY-MM-DD HH:MM:SS` in GMT.
//! Auth: Basic or OAuth Bearer; read-only comes from the user's roles
//! (`itil` or a custom read role, plus `snc_read_only`).

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{Signal, SignalKind, TenantId};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{Auth, ReadOnlyClient, RetryPolicy};
use crate::mapping::Hints;
use crate::{Connector, Item, Page, time};

mod config;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "servicenow";
const FIELDS: &str = "sys_id,number,short_description,description,state,priority,opened_at,sys_created_on,sys_updated_on,cmdb_ci,assignment_group,start_date,end_date,type";

/// Settings of one ServiceNow connector.
#[derive(Debug, Clone)]
pub struct ServiceNowSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// `https://INSTANCE.service-now.com`.
    pub base_url: String,
    /// Tables to read (`incident`, `problem`, `change_request`).
    pub tables: Vec<String>,
}

/// The ServiceNow connector.
#[derive(Debug)]
pub struct ServiceNow {
    settings: ServiceNowSettings,
    client: ReadOnlyClient,
}

impl ServiceNow {
    /// A connector with Basic or Bearer auth.
    pub fn new(settings: ServiceNowSettings, auth: Auth, policy: RetryPolicy) -> Result<Self> {
        for t in &settings.tables {
            if !matches!(t.as_str(), "incident" | "problem" | "change_request") {
                return Err(Error::Config {
                    connector: settings.name.clone(),
                    message: format!("table {t}: incident, problem or change_request"),
                });
            }
        }
        let client = ReadOnlyClient::new(
            SYSTEM,
            Some(auth),
            &[("accept", "application/json")],
            policy,
        )?
        .pinned_to(&settings.base_url)?;
        Ok(Self { settings, client })
    }
}

/// ServiceNow's GMT date-time literal.
fn glide(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[async_trait::async_trait]
impl Connector for ServiceNow {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn streams(&self) -> Vec<String> {
        self.settings.tables.clone()
    }

    async fn page(
        &self,
        tenant: &TenantId,
        table: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page> {
        let first = {
            let mut u =
                url::Url::parse(&format!("{}/api/now/table/{table}", self.settings.base_url))
                    .map_err(|e| Error::Config {
                        connector: self.settings.name.clone(),
                        message: format!("base_url: {e}"),
                    })?;
            u.query_pairs_mut()
                .append_pair(
                    "sysparm_query",
                    &format!("sys_updated_on>={}^ORDERBYsys_updated_on", glide(since_ns)),
                )
                .append_pair("sysparm_fields", FIELDS)
                .append_pair("sysparm_limit", "200")
                .append_pair("sysparm_offset", "0")
                .append_pair("sysparm_display_value", "false")
                .append_pair("sysparm_exclude_reference_link", "true");
            u.to_string()
        };
        let url = next.unwrap_or(&first);
        let resp = self.client.get(url).await?;
        let body: Results = resp.json(SYSTEM)?;
        let change = table == "change_request";
        let mut items = Vec::new();
        for r in body.result {
            let created = r
                .sys_created_on
                .as_deref()
                .or(r.opened_at.as_deref())
                .and_then(time::parse_ns)
                .ok_or_else(|| Error::Upstream {
                    system: SYSTEM,
                    url: format!("{}/api/now/table/{table}", self.settings.base_url),
                    message: format!("{}: sys_created_on unreadable", r.number),
                })?;
            let updated = r
                .sys_updated_on
                .as_deref()
                .and_then(time::parse_ns)
                .unwrap_or(created);
            // A change is dated by when it is carried out.
            let at = if change {
                r.start_date
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .and_then(time::parse_ns)
                    .unwrap_or(created)
            } else {
                created
            };
            items.push(Item {
                signal: Signal {
                    url: Some(format!(
                        "{}/nav_to.do?uri={table}.do?sys_id={}",
                        self.settings.base_url, r.sys_id
                    )),
                    title: r.short_description.unwrap_or_default(),
                    body: excerpt(r.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS),
                    updated_ns: updated,
                    status: r.state.map(|s| state_name(table, &s)),
                    ..Signal::new(
                        tenant,
                        if change {
                            SignalKind::Deploy
                        } else {
                            SignalKind::Ticket
                        },
                        &self.settings.name,
                        r.number.clone(),
                        at,
                    )
                },
                hints: Hints {
                    components: r.cmdb_ci.into_iter().filter(|c| !c.is_empty()).collect(),
                    ..Hints::default()
                },
            });
        }
        Ok(Page {
            items,
            next: resp.next_link(),
        })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for t in &self.settings.tables {
            let url = format!(
                "{}/api/now/table/{t}?sysparm_limit=1&sysparm_fields=sys_id",
                self.settings.base_url
            );
            let _: Results = self.client.get(&url).await?.json(SYSTEM)?;
            out.push(format!("{t}: readable"));
        }
        Ok(out)
    }
}

/// Incident and problem state codes as words (others kept as given).
fn state_name(table: &str, code: &str) -> String {
    let name = match (table, code) {
        ("incident", "1") => "new",
        ("incident", "2") => "in progress",
        ("incident", "3") => "on hold",
        ("incident", "6") => "resolved",
        ("incident", "7") => "closed",
        ("incident", "8") => "canceled",
        _ => code,
    };
    name.to_owned()
}

#[derive(Deserialize)]
struct Record {
    sys_id: String,
    number: String,
    short_description: Option<String>,
    description: Option<String>,
    state: Option<String>,
    opened_at: Option<String>,
    sys_created_on: Option<String>,
    sys_updated_on: Option<String>,
    cmdb_ci: Option<String>,
    start_date: Option<String>,
}

#[derive(Deserialize)]
struct Results {
    result: Vec<Record>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::sync::{SyncSettings, sync_connector};
    use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
    use crate::{MappingRule, ServiceMapper};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};
    use serde_json::json;

    fn snow(r: &Seen, base: &str) -> Answer {
        let ct = ("content-type", "application/json;charset=UTF-8".to_owned());
        // Basic base64("causeway:snow-pass").
        if r.header("authorization") != Some("Basic Y2F1c2V3YXk6c25vdy1wYXNz") {
            return (401, vec![ct], json!({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"}).to_string());
        }
        assert!(r.q("sysparm_query").is_some_and(
            |q| q.starts_with("sys_updated_on>=") && q.ends_with("^ORDERBYsys_updated_on")
        ));
        let inc = |n: &str, id: &str| {
            json!({
                "sys_id": id, "number": n, "short_description": "Checkout API 500 errors",
                "description": "Spike of 5xx on checkout-svc since 09:40 UTC", "state": "2", "priority": "1",
                "opened_at": "2024-05-01 09:45:10", "sys_created_on": "2024-05-01 09:45:10", "sys_updated_on": "2024-05-01 10:02:41",
                "cmdb_ci": "27d32778c0a8000b00db970eeaa60f16", "assignment_group": "287ebd7da9fe198100f92cc8d1d2154e"
            })
        };
        match (r.path.as_str(), r.q("sysparm_offset")) {
            ("/api/now/table/incident", Some("0")) => {
                let next = format!("<{base}/api/now/table/incident?sysparm_query={}&sysparm_limit=200&sysparm_offset=200>;rel=\"next\"",
                    url::form_urlencoded::byte_serialize(r.q("sysparm_query").unwrap_or_default().as_bytes()).collect::<String>());
                (200, vec![ct, ("link", next), ("x-total-count", "2".into())], json!({"result": [inc("INC0010023", "9d385017c611228701d22104cc95c371")]}).to_string())
            }
            ("/api/now/table/incident", Some("200")) => {
                let next = format!("<{base}/api/now/table/incident?sysparm_query={}&sysparm_limit=200&sysparm_offset=400>;rel=\"next\"",
                    url::form_urlencoded::byte_serialize(r.q("sysparm_query").unwrap_or_default().as_bytes()).collect::<String>());
                (200, vec![ct, ("link", next)], json!({"result": [inc("INC0010024", "9d385017c611228701d22104cc95c372")]}).to_string())
            }
            ("/api/now/table/incident", Some("400")) => (200, vec![ct], json!({"result": [inc("INC0010025", "9d385017c611228701d22104cc95c373")]}).to_string()),
            ("/api/now/table/change_request", _) => (200, vec![ct], json!({"result": [{
                "sys_id": "c1", "number": "CHG0030001", "short_description": "Upgrade checkout to v2.3.1",
                "description": "", "state": "-1", "sys_created_on": "2024-05-01 08:00:00", "sys_updated_on": "2024-05-01 09:30:00",
                "start_date": "2024-05-01 09:35:00", "end_date": "2024-05-01 09:50:00", "type": "normal", "cmdb_ci": ""
            }]}).to_string()),
            _ => (404, vec![ct], json!({"error": {"message": "No Record found"}, "status": "failure"}).to_string()),
        }
    }

    #[tokio::test]
    async fn tables_page_by_link_and_changes_are_dated_by_their_start() {
        let server = TestServer::start(snow).await;
        let sn = ServiceNow::new(
            ServiceNowSettings {
                name: "servicenow".into(),
                base_url: server.base.clone(),
                tables: vec!["incident".into(), "change_request".into()],
            },
            Auth::Basic {
                user: "causeway".into(),
                password: Secret::new("snow-pass"),
            },
            RetryPolicy::default(),
        )
        .expect("connector");
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(
            vec![MappingRule {
                component: Some("27d32778c0a8000b00db970eeaa60f16".into()),
                services: vec!["checkout".into()],
                ..MappingRule::default()
            }],
            Vec::new(),
        );
        let tenant = TenantId::new("acme").expect("tenant");
        let report = sync_connector(&sn, &tenant, &store, &mapper, SyncSettings::default()).await;
        assert!(report.failed.is_empty(), "{report:?}");
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), 4);
        let inc = all
            .iter()
            .find(|s| s.external_id == "INC0010024")
            .expect("page 2");
        assert_eq!(inc.status.as_deref(), Some("in progress"));
        assert_eq!(inc.services, ["checkout"], "configuration item rule");
        let chg = all
            .iter()
            .find(|s| s.kind == SignalKind::Deploy)
            .expect("change");
        assert_eq!(
            chg.created_ns,
            time::parse_ns("2024-05-01T09:35:00Z").expect("ts")
        );
        assert_read_only(&server.seen());
        assert!(
            ServiceNow::new(
                ServiceNowSettings {
                    name: "x".into(),
                    base_url: server.base.clone(),
                    tables: vec!["sys_user".into()]
                },
                Auth::Bearer(Secret::new("t")),
                RetryPolicy::default()
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn conforms() {
        let make = |password: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    ServiceNow::new(
                        ServiceNowSettings {
                            name: "servicenow".into(),
                            base_url: base.to_owned(),
                            tables: vec!["incident".into(), "change_request".into()],
                        },
                        Auth::Basic {
                            user: "causeway".into(),
                            password: Secret::new(password),
                        },
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(snow, make("snow-pass"), make("snow-wrong"), "snow-wrong")
            .await;
    }
}

//! Salesforce Cases: SOQL over the REST API, incrementally on
//! `SystemModstamp` (indexed, includes system changes), following the
//! relative `nextRecordsUrl` while `done` is false.
//!
//! Auth: an OAuth access token (Bearer) against the org's `instance_url`.
//! Salesforce has no read-only OAuth scope (`api` is the minimum): make
//! the integration user's profile read-only (API Enabled, Read on Case).
//! Every response carries `Sforce-Limit-Info: api-usage=N/M`; the daily
//! allocation running out is a 403 `REQUEST_LIMIT_EXCEEDED`.

use causeway_model::signal::{BODY_EXCERPT_CHARS, excerpt};
use causeway_model::{Signal, SignalKind, TenantId};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::{Auth, ReadOnlyClient, RetryPolicy};
use crate::mapping::Hints;
use crate::secret::Secret;
use crate::{Connector, Item, Page, time};

mod config;

pub use config::Config;
pub(crate) use config::INFO;

const SYSTEM: &str = "salesforce";

/// Settings of one Salesforce connector.
#[derive(Debug, Clone)]
pub struct SalesforceSettings {
    /// Instance name (the signals' `source`).
    pub name: String,
    /// `https://MYDOMAIN.my.salesforce.com`.
    pub instance_url: String,
    /// API version (`v62.0`).
    pub api_version: String,
    /// Lightning URL for links (`https://MYDOMAIN.lightning.force.com`).
    pub lightning_url: String,
}

/// The Salesforce connector.
#[derive(Debug)]
pub struct Salesforce {
    settings: SalesforceSettings,
    client: ReadOnlyClient,
}

impl Salesforce {
    /// A connector with an access token.
    pub fn new(settings: SalesforceSettings, token: Secret, policy: RetryPolicy) -> Result<Self> {
        Self::with_auth(settings, Auth::Bearer(token), policy)
    }

    /// A connector with any [`Auth`] (an OAuth session that renews itself).
    pub fn with_auth(
        settings: SalesforceSettings,
        auth: Auth,
        policy: RetryPolicy,
    ) -> Result<Self> {
        if !settings.api_version.starts_with('v') {
            return Err(Error::Config {
                connector: settings.name.clone(),
                message: format!(
                    "api_version {:?} should look like v62.0",
                    settings.api_version
                ),
            });
        }
        let client = ReadOnlyClient::new(SYSTEM, Some(auth), &[], policy)?
            .pinned_to(&settings.instance_url)?;
        Ok(Self { settings, client })
    }
}

#[async_trait::async_trait]
impl Connector for Salesforce {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn system(&self) -> &'static str {
        SYSTEM
    }

    fn streams(&self) -> Vec<String> {
        vec!["cases".into()]
    }

    async fn page(
        &self,
        tenant: &TenantId,
        _stream: &str,
        since_ns: i64,
        next: Option<&str>,
    ) -> Result<Page> {
        let s = &self.settings;
        let url = match next {
            // Relative, as given.
            Some(n) => format!("{}{n}", s.instance_url),
            None => {
                let soql = format!(
                    "SELECT Id,CaseNumber,Subject,Description,Status,Priority,Type,IsClosed,CreatedDate,LastModifiedDate,SystemModstamp,Product__c FROM Case WHERE SystemModstamp >= {} ORDER BY SystemModstamp ASC",
                    time::rfc3339(since_ns)
                );
                let q: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
                format!(
                    "{}/services/data/{}/query?q={q}",
                    s.instance_url, s.api_version
                )
            }
        };
        let resp = match self.client.get(&url).await {
            // Orgs without the custom product field: the standard fields only.
            Err(Error::Upstream { message, .. })
                if next.is_none() && message.contains("Product__c") =>
            {
                self.client.get(&url.replace("%2CProduct__c", "")).await?
            }
            r => r?,
        };
        let body: QueryResult = resp.json(SYSTEM)?;
        let mut items = Vec::new();
        for c in body.records {
            let created = c
                .created_date
                .as_deref()
                .and_then(time::parse_ns)
                .ok_or_else(|| Error::Upstream {
                    system: SYSTEM,
                    url: format!("{}/services/data/{}/query", s.instance_url, s.api_version),
                    message: format!("case {}: CreatedDate unreadable", c.id),
                })?;
            let updated = c
                .system_modstamp
                .as_deref()
                .or(c.last_modified_date.as_deref())
                .and_then(time::parse_ns)
                .unwrap_or(created);
            items.push(Item {
                signal: Signal {
                    url: Some(format!(
                        "{}/lightning/r/Case/{}/view",
                        s.lightning_url, c.id
                    )),
                    title: c.subject.unwrap_or_default(),
                    body: excerpt(c.description.as_deref().unwrap_or(""), BODY_EXCERPT_CHARS),
                    updated_ns: updated,
                    status: c.status,
                    ..Signal::new(
                        tenant,
                        SignalKind::Ticket,
                        &s.name,
                        c.case_number.clone().unwrap_or_else(|| c.id.clone()),
                        created,
                    )
                },
                hints: Hints {
                    components: c.product.into_iter().chain(c.r#type).collect(),
                    ..Hints::default()
                },
            });
        }
        let next = if body.done {
            None
        } else {
            body.next_records_url
        };
        Ok(Page { items, next })
    }

    async fn check(&self) -> Result<Vec<String>> {
        let s = &self.settings;
        let resp = self
            .client
            .get(&format!(
                "{}/services/data/{}/limits",
                s.instance_url, s.api_version
            ))
            .await?;
        let limits: serde_json::Value = resp.json(SYSTEM)?;
        let daily = &limits["DailyApiRequests"];
        Ok(vec![format!(
            "API reachable; daily requests remaining {} of {}",
            daily["Remaining"], daily["Max"]
        )])
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Case {
    id: String,
    case_number: Option<String>,
    subject: Option<String>,
    description: Option<String>,
    status: Option<String>,
    r#type: Option<String>,
    created_date: Option<String>,
    last_modified_date: Option<String>,
    system_modstamp: Option<String>,
    #[serde(rename = "Product__c")]
    product: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryResult {
    done: bool,
    next_records_url: Option<String>,
    records: Vec<Case>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceMapper;
    use crate::sync::{SyncSettings, sync_connector};
    use crate::testserver::{Answer, Seen, TestServer, assert_read_only};
    use causeway_store::{DuckDbSignals, SignalQuery, SignalStore};
    use serde_json::json;

    fn salesforce(r: &Seen, _base: &str) -> Answer {
        let ct = ("content-type", "application/json;charset=UTF-8".to_owned());
        let usage = ("sforce-limit-info", "api-usage=10018/100000".to_owned());
        if r.header("authorization") != Some("Bearer 00Dxx!sf-token") {
            return (401, vec![ct], json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]).to_string());
        }
        let case = |n: &str, subject: &str, product: &str| {
            json!({
                "attributes": {"type": "Case", "url": "/services/data/v62.0/sobjects/Case/500D000000AbCdEIAV"},
                "Id": format!("500D0000{n}"), "CaseNumber": n, "Subject": subject,
                "Description": "Payment step fails with error 500", "Status": "New", "Priority": "High",
                "Type": "Problem", "IsClosed": false, "CreatedDate": "2024-05-01T09:47:03.000+0000",
                "LastModifiedDate": "2024-05-01T10:01:12.000+0000", "SystemModstamp": "2024-05-01T10:01:12.000+0000",
                "Product__c": product
            })
        };
        match r.path.as_str() {
            "/services/data/v62.0/query" => {
                let q = r.q("q").unwrap_or_default();
                assert!(q.starts_with("SELECT Id,CaseNumber") && q.contains("FROM Case WHERE SystemModstamp >= ") && q.ends_with("ORDER BY SystemModstamp ASC"), "{q}");
                (200, vec![ct, usage], json!({"totalSize": 2, "done": false,
                    "nextRecordsUrl": "/services/data/v62.0/query/01gRO0000016PIAYA2-2000",
                    "records": [case("00001026", "Cannot complete checkout", "Checkout")]}).to_string())
            }
            "/services/data/v62.0/query/01gRO0000016PIAYA2-2000" => (200, vec![ct, usage.clone()], json!({"totalSize": 3, "done": false,
                "nextRecordsUrl": "/services/data/v62.0/query/01gRO0000016PIAYA2-4000",
                "records": [case("00001027", "Slow search", "Search")]}).to_string()),
            "/services/data/v62.0/query/01gRO0000016PIAYA2-4000" => (200, vec![ct, usage], json!({"totalSize": 3, "done": true,
                "records": [case("00001028", "Invoice wrong", "Billing")]}).to_string()),
            _ => (404, vec![ct], json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]).to_string()),
        }
    }

    #[tokio::test]
    async fn soql_pages_follow_next_records_url() {
        let server = TestServer::start(salesforce).await;
        let sf = Salesforce::new(
            SalesforceSettings {
                name: "salesforce".into(),
                instance_url: server.base.clone(),
                api_version: "v62.0".into(),
                lightning_url: "https://acme.lightning.force.com".into(),
            },
            Secret::new("00Dxx!sf-token"),
            RetryPolicy::default(),
        )
        .expect("connector");
        let store = tokio::sync::Mutex::new(DuckDbSignals::in_memory().expect("store"));
        let mapper = ServiceMapper::new(Vec::new(), ["checkout".to_owned(), "search".to_owned()]);
        let tenant = TenantId::new("acme").expect("tenant");
        let report = sync_connector(&sf, &tenant, &store, &mapper, SyncSettings::default()).await;
        assert!(report.failed.is_empty(), "{report:?}");
        let all = store
            .lock()
            .await
            .signals(&tenant, &SignalQuery::default())
            .expect("q");
        assert_eq!(all.len(), 3);
        let c = all
            .iter()
            .find(|s| s.external_id == "00001026")
            .expect("case");
        assert_eq!(c.services, ["checkout"]);
        assert_eq!(
            c.url.as_deref(),
            Some("https://acme.lightning.force.com/lightning/r/Case/500D000000001026/view")
        );
        assert_eq!(
            all.iter()
                .find(|s| s.external_id == "00001027")
                .expect("c")
                .services,
            ["search"]
        );
        assert_read_only(&server.seen());
    }

    #[tokio::test]
    async fn conforms() {
        let make = |token: &'static str| {
            move |base: &str| -> Box<dyn Connector> {
                Box::new(
                    Salesforce::new(
                        SalesforceSettings {
                            name: "salesforce".into(),
                            instance_url: base.to_owned(),
                            api_version: "v62.0".into(),
                            lightning_url: "https://acme.lightning.force.com".into(),
                        },
                        Secret::new(token),
                        RetryPolicy::default(),
                    )
                    .expect("connector"),
                )
            }
        };
        crate::testserver::conformance(
            salesforce,
            make("00Dxx!sf-token"),
            make("00Dxx!sf-wrong"),
            "sf-wrong",
        )
        .await;
    }
}

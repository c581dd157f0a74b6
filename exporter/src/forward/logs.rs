//! What causeway itself sends as OTLP log records: RCA reports
//! (`rca_logs`) and audit events (`audit_logs`), one record each, with the
//! attributes a log pipeline filters on.

use causeway_model::rca::RcaReport;
use causeway_model::{AuditEvent, TenantId};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;

pub(super) fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        key_strindex: 0,
        value: Some(AnyValue { value: Some(value) }),
    }
}

pub(super) fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.to_owned())
}

/// An RCA report as one OTLP log record (event `causeway.rca`): the summary
/// as body, the top hypothesis as attributes, the report's JSON as
/// `causeway.rca.report` for tools that want all of it.
pub fn rca_log_request(report: &RcaReport) -> ExportLogsServiceRequest {
    let mut attributes = vec![
        kv("event.name", s("causeway.rca")),
        kv(
            "causeway.rca.id",
            any_value::Value::IntValue(i64::try_from(report.id).unwrap_or(i64::MAX)),
        ),
        kv(
            "causeway.incident.id",
            any_value::Value::IntValue(i64::try_from(report.incident).unwrap_or(i64::MAX)),
        ),
        kv(
            "causeway.rca.impacted_services",
            s(&report.impacted_services.join(",")),
        ),
    ];
    if let Some(top) = report.hypotheses.first() {
        attributes.push(kv("causeway.rca.culprit.service", s(&top.service)));
        if let Some(op) = &top.operation {
            attributes.push(kv("causeway.rca.culprit.operation", s(op)));
        }
        attributes.push(kv("causeway.rca.cause", s(top.cause.as_str())));
        attributes.push(kv(
            "causeway.rca.confidence",
            any_value::Value::DoubleValue(top.confidence),
        ));
    }
    if let Ok(json) = serde_json::to_string(report) {
        attributes.push(kv("causeway.rca.report", s(&json)));
    }
    let time = u64::try_from(report.computed_ns).unwrap_or(0);
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("causeway")),
                    kv("causeway.tenant", s(&report.tenant)),
                ],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "causeway.rca".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: time,
                    observed_time_unix_nano: time,
                    severity_number: SeverityNumber::Warn as i32,
                    severity_text: "WARN".to_owned(),
                    body: Some(AnyValue {
                        value: Some(s(&report.summary)),
                    }),
                    attributes,
                    ..LogRecord::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One audit event as an OTLP log request (event `causeway.audit`): the
/// action as body; tenant, outcome, actor and (already redacted) detail as
/// attributes; never a key, only its fingerprint.
pub fn audit_log_request(event: &AuditEvent) -> ExportLogsServiceRequest {
    let tenant = event.tenant.as_ref().map_or("", TenantId::as_str);
    let mut attributes = vec![
        kv("event.name", s("causeway.audit")),
        kv("causeway.audit.action", s(&event.action)),
        kv("causeway.audit.outcome", s(event.outcome.as_str())),
        kv("causeway.audit.via", s(&event.actor.via)),
        kv("causeway.audit.detail", s(&event.detail)),
    ];
    if let Some(client) = event.actor.client {
        attributes.push(kv("client.address", s(&client.to_string())));
    }
    if let Some(fp) = &event.actor.key_fingerprint {
        attributes.push(kv("causeway.audit.key_fingerprint", s(fp)));
    }
    let time = u64::try_from(event.at_ns).unwrap_or(0);
    let severity = match event.outcome {
        causeway_model::AuditOutcome::Success => (SeverityNumber::Info, "INFO"),
        causeway_model::AuditOutcome::Failure => (SeverityNumber::Warn, "WARN"),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("causeway")),
                    kv("causeway.tenant", s(tenant)),
                ],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "causeway.audit".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: time,
                    observed_time_unix_nano: time,
                    severity_number: severity.0 as i32,
                    severity_text: severity.1.to_owned(),
                    body: Some(AnyValue {
                        value: Some(s(&event.action)),
                    }),
                    attributes,
                    ..LogRecord::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

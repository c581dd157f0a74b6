//! The Arrow schema of spans: one row per span, the metadata correlation
//! needs, repeated strings dictionary-encoded.
//!
//! Resource-level columns (service, version, environment, host, pod,
//! instance) repeat for every span of a resource; span-level string columns
//! (name, route, ...) repeat across spans. Both are `Dictionary(UInt32,
//! Utf8)`. Ids are fixed-size binary; times are UTC nanosecond timestamps.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Column names, in schema order.
pub mod col {
    #![allow(missing_docs)]
    pub const TENANT: &str = "tenant";
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const SERVICE_NAME: &str = "service_name";
    pub const SERVICE_VERSION: &str = "service_version";
    pub const SERVICE_INSTANCE_ID: &str = "service_instance_id";
    pub const DEPLOYMENT_ENVIRONMENT: &str = "deployment_environment";
    pub const HOST_NAME: &str = "host_name";
    pub const K8S_POD_NAME: &str = "k8s_pod_name";
    pub const SPAN_NAME: &str = "span_name";
    pub const SPAN_KIND: &str = "span_kind";
    pub const START_TIME: &str = "start_time";
    pub const END_TIME: &str = "end_time";
    pub const DURATION_NS: &str = "duration_ns";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const HTTP_METHOD: &str = "http_method";
    pub const HTTP_ROUTE: &str = "http_route";
    pub const HTTP_STATUS_CODE: &str = "http_status_code";
    pub const RPC_SYSTEM: &str = "rpc_system";
    pub const RPC_SERVICE: &str = "rpc_service";
    pub const RPC_METHOD: &str = "rpc_method";
    pub const RPC_GRPC_STATUS_CODE: &str = "rpc_grpc_status_code";
    pub const DB_SYSTEM: &str = "db_system";
    pub const DB_OPERATION: &str = "db_operation";
    pub const PEER_SERVICE: &str = "peer_service";
    pub const SERVER_ADDRESS: &str = "server_address";
    pub const MESSAGING_SYSTEM: &str = "messaging_system";
    pub const MESSAGING_DESTINATION: &str = "messaging_destination";
    pub const EXCEPTION_TYPE: &str = "exception_type";
    pub const EXCEPTION_MESSAGE: &str = "exception_message";
    pub const EVENT_TEMPLATES: &str = "event_templates";
}

/// `span_kind` values (OTLP's `SpanKind`).
pub mod kind {
    #![allow(missing_docs)]
    pub const UNSPECIFIED: i8 = 0;
    pub const INTERNAL: i8 = 1;
    pub const SERVER: i8 = 2;
    pub const CLIENT: i8 = 3;
    pub const PRODUCER: i8 = 4;
    pub const CONSUMER: i8 = 5;
}

/// `status_code` values (OTLP's `Status.StatusCode`).
pub mod status {
    #![allow(missing_docs)]
    pub const UNSET: i8 = 0;
    pub const OK: i8 = 1;
    pub const ERROR: i8 = 2;
}

fn dict() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use col::*;
    Arc::new(Schema::new(vec![
        Field::new(TENANT, dict(), false),
        Field::new(TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new(SPAN_ID, DataType::FixedSizeBinary(8), false),
        Field::new(PARENT_SPAN_ID, DataType::FixedSizeBinary(8), true),
        Field::new(SERVICE_NAME, dict(), false),
        Field::new(SERVICE_VERSION, dict(), true),
        Field::new(SERVICE_INSTANCE_ID, dict(), true),
        Field::new(DEPLOYMENT_ENVIRONMENT, dict(), true),
        Field::new(HOST_NAME, dict(), true),
        Field::new(K8S_POD_NAME, dict(), true),
        Field::new(SPAN_NAME, dict(), false),
        Field::new(SPAN_KIND, DataType::Int8, false),
        Field::new(START_TIME, ts(), false),
        Field::new(END_TIME, ts(), false),
        Field::new(DURATION_NS, DataType::Int64, false),
        Field::new(STATUS_CODE, DataType::Int8, false),
        Field::new(STATUS_MESSAGE, DataType::Utf8, true),
        Field::new(HTTP_METHOD, dict(), true),
        Field::new(HTTP_ROUTE, dict(), true),
        Field::new(HTTP_STATUS_CODE, DataType::Int32, true),
        Field::new(RPC_SYSTEM, dict(), true),
        Field::new(RPC_SERVICE, dict(), true),
        Field::new(RPC_METHOD, dict(), true),
        Field::new(RPC_GRPC_STATUS_CODE, DataType::Int32, true),
        Field::new(DB_SYSTEM, dict(), true),
        Field::new(DB_OPERATION, dict(), true),
        Field::new(PEER_SERVICE, dict(), true),
        Field::new(SERVER_ADDRESS, dict(), true),
        Field::new(MESSAGING_SYSTEM, dict(), true),
        Field::new(MESSAGING_DESTINATION, dict(), true),
        Field::new(EXCEPTION_TYPE, dict(), true),
        Field::new(EXCEPTION_MESSAGE, DataType::Utf8, true),
        // The span's events (log lines, exceptions) as templates
        // (`template::event_template`), in order, joined by newlines. A
        // dictionary: the same code path logs the same sequence.
        Field::new(EVENT_TEMPLATES, dict(), true),
    ]))
});

/// The span schema (shared; cloning is cheap).
pub fn span_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

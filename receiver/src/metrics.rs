//! The receiver's own counters, in the style of the Collector's
//! `otelcol_receiver_accepted_spans` / `otelcol_receiver_refused_spans`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Accepted {
    transport: &'static str,
    tenant: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refused {
    transport: &'static str,
    tenant: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Unidentified {
    transport: &'static str,
    reason: &'static str,
}

/// Counters of accepted and refused spans and requests.
#[derive(Debug, Clone, Default)]
pub struct ReceiverMetrics {
    accepted_spans: Family<Accepted, Counter>,
    accepted_requests: Family<Accepted, Counter>,
    refused_spans: Family<Refused, Counter>,
    refused_requests: Family<Refused, Counter>,
    unidentified_requests: Family<Unidentified, Counter>,
}

impl ReceiverMetrics {
    /// Creates the counters and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "causeway_receiver_accepted_spans",
            "Spans accepted and queued for processing",
            m.accepted_spans.clone(),
        );
        registry.register(
            "causeway_receiver_accepted_requests",
            "Export requests accepted (fully or partially)",
            m.accepted_requests.clone(),
        );
        registry.register(
            "causeway_receiver_refused_spans",
            "Spans refused, by reason (invalid ids, throttling, ...)",
            m.refused_spans.clone(),
        );
        registry.register(
            "causeway_receiver_refused_requests",
            "Export requests refused as a whole, by reason",
            m.refused_requests.clone(),
        );
        // Without a tenant label: `/metrics` shows each tenant its own
        // series and the process-wide ones, and a request refused before
        // its credentials were checked belongs to no tenant; an operator
        // must still see a client sending a stale key.
        registry.register(
            "causeway_receiver_refused_unidentified_requests",
            "Export requests refused before a tenant was known (missing or bad credentials, unreadable request), by reason",
            m.unidentified_requests.clone(),
        );
        m
    }

    /// Counts an accepted request and its spans.
    pub fn accepted(&self, transport: &'static str, tenant: &str, spans: u64) {
        let labels = Accepted {
            transport,
            tenant: tenant.to_owned(),
        };
        self.accepted_spans.get_or_create(&labels).inc_by(spans);
        self.accepted_requests.get_or_create(&labels).inc();
    }

    /// Counts refused spans within an otherwise handled request.
    pub fn refused_spans(
        &self,
        transport: &'static str,
        tenant: &str,
        reason: &'static str,
        spans: u64,
    ) {
        if spans == 0 {
            return;
        }
        let labels = Refused {
            transport,
            tenant: tenant.to_owned(),
            reason,
        };
        self.refused_spans.get_or_create(&labels).inc_by(spans);
    }

    /// Counts a request refused as a whole; `None` when it was refused
    /// before a tenant was known.
    pub fn refused_request(
        &self,
        transport: &'static str,
        tenant: Option<&str>,
        reason: &'static str,
    ) {
        let Some(tenant) = tenant else {
            self.unidentified_requests
                .get_or_create(&Unidentified { transport, reason })
                .inc();
            return;
        };
        let labels = Refused {
            transport,
            tenant: tenant.to_owned(),
            reason,
        };
        self.refused_requests.get_or_create(&labels).inc();
    }
}

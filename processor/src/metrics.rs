//! The processor's own counters on `/metrics`: what it could not process
//! or store, and what it had to cut.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Counters of the processor stage (cheap to clone: they share values).
#[derive(Debug, Clone, Default)]
pub struct ProcessorMetrics {
    /// Names and string values cut at `MAX_VALUE_BYTES`.
    pub truncated_values: Counter,
    /// Accepted batches that could not be converted or aggregated (a bug,
    /// not bad input: the receiver validated them).
    pub failed_batches: Counter,
    /// Failed writes to the series store or span files (the disk's fault;
    /// the data stays in memory and is written at the next checkpoint).
    pub store_failures: Counter,
}

impl ProcessorMetrics {
    /// Registers the counters.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "causeway_processor_truncated_values",
            "Names and string values cut at 4 KiB (OpenTelemetry attribute-value length limit)",
            m.truncated_values.clone(),
        );
        registry.register(
            "causeway_processor_failed_batches",
            "Accepted batches the processor could not convert or aggregate",
            m.failed_batches.clone(),
        );
        registry.register(
            "causeway_processor_store_failures",
            "Failed writes to the series store or span files (retried at the next checkpoint)",
            m.store_failures.clone(),
        );
        m
    }
}

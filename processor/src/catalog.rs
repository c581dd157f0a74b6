//! The service catalog: per tenant, every service seen and its span and
//! error counts.

use std::collections::HashMap;

use causeway_model::{ServiceCount, TenantId};

/// Distinct services tracked per tenant; spans of further services count
/// under [`OVERFLOW_SERVICE`] so nothing is dropped and memory stays bounded
/// when a client sends unbounded `service.name` values.
pub const MAX_SERVICES_PER_TENANT: usize = 10_000;

/// The catch-all entry once a tenant has [`MAX_SERVICES_PER_TENANT`] services.
pub const OVERFLOW_SERVICE: &str = "otel.metric.overflow";

/// Counts for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStats {
    /// `service.name`.
    pub name: String,
    /// Spans accepted.
    pub spans: u64,
    /// Spans with status ERROR.
    pub errors: u64,
    /// Earliest span start, unix ns (0 if unknown).
    pub first_seen_ns: u64,
    /// Latest span end, unix ns (0 if unknown).
    pub last_seen_ns: u64,
}

#[derive(Debug, Default)]
struct Entry {
    spans: u64,
    errors: u64,
    first_ns: u64,
    last_ns: u64,
}

/// Per-tenant service counts.
#[derive(Debug, Default)]
pub struct Catalog {
    tenants: HashMap<TenantId, HashMap<String, Entry>>,
    /// (tenant, service) changed since the last checkpoint.
    dirty: std::collections::HashSet<(TenantId, String)>,
}

impl Catalog {
    /// Adds the counts of one batch.
    pub fn add(&mut self, tenant: &TenantId, services: &[ServiceCount]) {
        let map = match self.tenants.get_mut(tenant) {
            Some(m) => m,
            None => self.tenants.entry(tenant.clone()).or_default(),
        };
        for s in services {
            let key = if map.contains_key(s.name.as_str()) || map.len() < MAX_SERVICES_PER_TENANT {
                s.name.as_str()
            } else {
                OVERFLOW_SERVICE
            };
            self.dirty.insert((tenant.clone(), key.to_owned()));
            let entry = match map.get_mut(key) {
                Some(e) => e,
                None => map.entry(key.to_owned()).or_default(),
            };
            entry.spans += s.spans;
            entry.errors += s.errors;
            if s.first_ns != 0 && (entry.first_ns == 0 || s.first_ns < entry.first_ns) {
                entry.first_ns = s.first_ns;
            }
            entry.last_ns = entry.last_ns.max(s.last_ns);
        }
    }

    /// Rows changed since the last call, and forgets them.
    pub fn take_dirty(&mut self) -> Vec<causeway_store::ServiceRow> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|(tenant, name)| {
                let e = self.tenants.get(&tenant)?.get(&name)?;
                Some(causeway_store::ServiceRow {
                    spans: e.spans,
                    errors: e.errors,
                    first_ns: e.first_ns,
                    last_ns: e.last_ns,
                    tenant,
                    name,
                })
            })
            .collect()
    }

    /// Puts back stored rows (at startup).
    pub fn restore(&mut self, rows: Vec<causeway_store::ServiceRow>) {
        for r in rows {
            self.tenants.entry(r.tenant).or_default().insert(
                r.name,
                Entry {
                    spans: r.spans,
                    errors: r.errors,
                    first_ns: r.first_ns,
                    last_ns: r.last_ns,
                },
            );
        }
    }

    /// Forgets one tenant.
    pub fn delete_tenant(&mut self, tenant: &TenantId) {
        self.tenants.remove(tenant);
        self.dirty.retain(|(t, _)| t != tenant);
    }

    /// The services of one tenant, by name.
    pub fn services(&self, tenant: &TenantId) -> Vec<ServiceStats> {
        let mut out: Vec<ServiceStats> = self
            .tenants
            .get(tenant)
            .map(|m| {
                m.iter()
                    .map(|(name, e)| ServiceStats {
                        name: name.clone(),
                        spans: e.spans,
                        errors: e.errors,
                        first_seen_ns: e.first_ns,
                        last_seen_ns: e.last_ns,
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(name: &str, spans: u64, errors: u64, first: u64, last: u64) -> ServiceCount {
        ServiceCount {
            name: name.into(),
            spans,
            errors,
            first_ns: first,
            last_ns: last,
        }
    }

    #[test]
    fn merges_counts_and_times_per_tenant() {
        let a = TenantId::new("a").expect("tenant");
        let b = TenantId::new("b").expect("tenant");
        let mut c = Catalog::default();
        c.add(
            &a,
            &[count("cart", 3, 1, 100, 200), count("web", 1, 0, 0, 0)],
        );
        c.add(&a, &[count("cart", 2, 2, 50, 150)]);
        c.add(&b, &[count("billing", 7, 0, 10, 20)]);
        let s = c.services(&a);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            ServiceStats {
                name: "cart".into(),
                spans: 5,
                errors: 3,
                first_seen_ns: 50,
                last_seen_ns: 200
            }
        );
        assert_eq!(s[1].first_seen_ns, 0);
        assert_eq!(c.services(&b).len(), 1);
        assert!(c.services(&TenantId::new("c").expect("tenant")).is_empty());
    }

    #[test]
    fn overflows_instead_of_growing_without_bound() {
        let t = TenantId::default_tenant();
        let mut c = Catalog::default();
        for i in 0..MAX_SERVICES_PER_TENANT + 5 {
            c.add(&t, &[count(&format!("svc-{i}"), 1, 0, 1, 2)]);
        }
        let s = c.services(&t);
        assert_eq!(s.len(), MAX_SERVICES_PER_TENANT + 1);
        let overflow = s
            .iter()
            .find(|s| s.name == OVERFLOW_SERVICE)
            .expect("overflow");
        assert_eq!(overflow.spans, 5);
        assert_eq!(
            s.iter().map(|s| s.spans).sum::<u64>(),
            (MAX_SERVICES_PER_TENANT + 5) as u64
        );
    }
}

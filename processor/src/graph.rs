//! The service graph: edges client → server, found by pairing spans.
//!
//! Pairs, in order of preference:
//! - a CLIENT span and its SERVER child in another service (`""`, direct);
//! - a PRODUCER span and its CONSUMER child (`messaging_system`);
//! - any parent and child in different services, for data whose span kinds
//!   are missing or INTERNAL (direct);
//! - a span naming a database (`db.system`) with no child: an edge to the
//!   database as a virtual node (`database`);
//! - a CLIENT/PRODUCER span whose server never shows up within the TTL but
//!   that names its peer (`peer.service`, `server.address`): an edge to a
//!   virtual node (`virtual_node`).
//!
//! Parent or child may arrive first: spans wait in a bounded store for up to
//! `ttl` of event time. Spans that expire unpaired are counted, as are those
//! evicted when the store is full. Edge names follow the Collector's
//! `servicegraph` connector (`client`, `server`, `connection_type`).
//!
//! The same store gives each span's self time: its duration minus the time
//! covered by its children (the union of their intervals, clipped to the
//! parent's, so parallel calls are not counted twice and an asynchronous
//! child outliving its parent does not make self time negative). A span's
//! self time is final when it leaves the store (after the TTL), since a
//! child may arrive after its parent (another process exports it); it is
//! handed out then, keyed like the RED series, through `take_self_times`.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};
use causeway_model::schema::{col, kind, status};

use crate::error::Error;
use crate::red::{DictColumn, RedKey};
use crate::series::{SeriesKey, SeriesSet, Totals};

/// How client and server are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionType {
    /// Both ends instrumented.
    Direct,
    /// The server is not instrumented; named from the client's attributes.
    VirtualNode,
    /// Through a queue (PRODUCER → CONSUMER).
    MessagingSystem,
    /// The server is a database.
    Database,
}

impl ConnectionType {
    /// The `connection_type` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "",
            Self::VirtualNode => "virtual_node",
            Self::MessagingSystem => "messaging_system",
            Self::Database => "database",
        }
    }
}

/// Overflow edge client name.
pub const OVERFLOW: &str = "otel.metric.overflow";

/// One edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    /// Calling service.
    pub client: Arc<str>,
    /// Called service or virtual node.
    pub server: Arc<str>,
    /// How they connect.
    pub connection: ConnectionType,
}

impl SeriesKey for EdgeKey {
    fn overflow() -> Self {
        Self {
            client: Arc::from(OVERFLOW),
            server: Arc::from(OVERFLOW),
            connection: ConnectionType::Direct,
        }
    }

    fn is_overflow(&self) -> bool {
        &*self.client == OVERFLOW && &*self.server == OVERFLOW
    }

    fn parts(&self) -> (&str, &str, i8, i8) {
        let c = match self.connection {
            ConnectionType::Direct => 0,
            ConnectionType::VirtualNode => 1,
            ConnectionType::MessagingSystem => 2,
            ConnectionType::Database => 3,
        };
        (&self.client, &self.server, c, 0)
    }

    fn from_parts(a: &str, b: &str, c: i8, _: i8) -> Option<Self> {
        let connection = match c {
            0 => ConnectionType::Direct,
            1 => ConnectionType::VirtualNode,
            2 => ConnectionType::MessagingSystem,
            3 => ConnectionType::Database,
            _ => return None,
        };
        Some(Self {
            client: Arc::from(a),
            server: Arc::from(b),
            connection,
        })
    }
}

/// Pairing settings.
#[derive(Debug, Clone, Copy)]
pub struct GraphSettings {
    /// How long (event time) a span waits for its partner, ns.
    pub ttl_ns: i64,
    /// Spans held waiting, at most.
    pub max_pending: usize,
}

type SpanRef = ([u8; 16], [u8; 8]);

/// No slot: the end of a waiting chain.
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Pending {
    service: Arc<str>,
    operation: Arc<str>,
    kind: i8,
    status: i8,
    start_ns: i64,
    end_ns: i64,
    duration_us: u64,
    error: bool,
    /// Virtual peer this span names, if any.
    peer: Option<(Arc<str>, ConnectionType)>,
    /// Already an edge's client end.
    paired: bool,
    /// Intervals of the children seen so far (start, end), ns.
    children: Vec<(i64, i64)>,
    /// The next child waiting for the same parent, or [`NIL`].
    next: u32,
}

/// A span's self time, final: its RED key, start (ns) and self time (µs).
pub type SelfTime = (RedKey, i64, u64);

/// `end - start` minus the union of `children` clipped to `[start, end]`,
/// in ns (sorts `children`).
pub fn self_time_ns(start: i64, end: i64, children: &mut [(i64, i64)]) -> i64 {
    let total = end.saturating_sub(start).max(0);
    if children.is_empty() {
        return total;
    }
    children.sort_unstable();
    let mut covered = 0i64;
    let mut run: Option<(i64, i64)> = None;
    for &(s, e) in children.iter() {
        let (s, e) = (s.max(start), e.min(end));
        if e <= s {
            continue;
        }
        run = match run {
            Some((rs, re)) if s <= re => Some((rs, re.max(e))),
            Some((rs, re)) => {
                covered += re - rs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((rs, re)) = run {
        covered += re - rs;
    }
    (total - covered).max(0)
}

/// The pairing store and edge series of one tenant.
#[derive(Debug)]
pub struct GraphState {
    settings: GraphSettings,
    /// Every waiting span, in slots reused once freed: the maps hold slot
    /// numbers, so the store neither moves spans when a map grows nor
    /// allocates per span once warm (a slot's `children` buffer is kept).
    slots: Vec<Pending>,
    /// Free slots.
    free: Vec<u32>,
    // Ids are random bytes: a fast hash is enough, and SipHash's DoS
    // resistance buys nothing for a per-tenant, bounded map.
    spans: HashMap<SpanRef, u32, RandomState>,
    /// Children whose parent has not arrived, by (trace, parent id): the
    /// first of a chain linked through `next`.
    waiting: HashMap<SpanRef, u32, RandomState>,
    /// Spans in `waiting`'s chains.
    waiting_spans: usize,
    /// Arrival order, for expiry and eviction: (end time, span, is_waiting).
    order: VecDeque<(i64, SpanRef, bool)>,
    watermark_ns: i64,
    /// Spans that expired or were evicted without an edge.
    pub unpaired: u64,
    /// Spans evicted because the store was full.
    pub evicted: u64,
    /// The server side's view of each paired edge (its SERVER or CONSUMER
    /// span's duration), for `traces_service_graph_request_server_seconds`;
    /// the edge series hold the client's view.
    server_side: HashMap<EdgeKey, Totals, RandomState>,
    /// Self times of spans that left the store, until taken.
    finished: Vec<SelfTime>,
}

impl GraphState {
    /// An empty store.
    pub fn new(settings: GraphSettings) -> Self {
        Self {
            settings,
            slots: Vec::new(),
            free: Vec::new(),
            spans: HashMap::default(),
            waiting: HashMap::default(),
            waiting_spans: 0,
            order: VecDeque::new(),
            watermark_ns: i64::MIN,
            unpaired: 0,
            evicted: 0,
            server_side: HashMap::default(),
            finished: Vec::new(),
        }
    }

    /// The self times of spans that left the store since the last call.
    pub fn take_self_times(&mut self) -> Vec<SelfTime> {
        std::mem::take(&mut self.finished)
    }

    /// The server side's cumulative view of each edge with an instrumented
    /// server.
    pub fn server_totals(&self) -> impl Iterator<Item = (&EdgeKey, &Totals)> {
        self.server_side.iter()
    }

    /// Spans currently waiting.
    pub fn pending(&self) -> usize {
        self.spans.len() + self.waiting_spans
    }

    /// Stores `span` in a free slot (or a new one); returns the slot.
    fn alloc(&mut self, mut span: Pending) -> u32 {
        match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                // Keep the slot's buffer unless `span` brings its own
                // (children that arrived before it).
                if span.children.is_empty() {
                    let mut children = std::mem::take(&mut slot.children);
                    children.clear();
                    span.children = children;
                }
                *slot = span;
                i
            }
            None => {
                // Slots are bounded by `max_pending` (see `add`), far below
                // `u32::MAX`.
                let i = u32::try_from(self.slots.len()).unwrap_or(NIL);
                self.slots.push(span);
                i
            }
        }
    }

    /// Pairs the spans of `batch`, recording edges into `edges`.
    pub fn record_batch(
        &mut self,
        edges: &mut SeriesSet<EdgeKey>,
        batch: &RecordBatch,
    ) -> Result<(), Error> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| Error::Schema(format!("span batch has no column {name}")))
        };
        let trace = column(col::TRACE_ID)?.as_fixed_size_binary().clone();
        let span_id = column(col::SPAN_ID)?.as_fixed_size_binary().clone();
        let parent = column(col::PARENT_SPAN_ID)?.as_fixed_size_binary().clone();
        let kinds = column(col::SPAN_KIND)?.as_primitive::<Int8Type>().clone();
        let codes = column(col::STATUS_CODE)?.as_primitive::<Int8Type>().clone();
        let start = column(col::START_TIME)?
            .as_primitive::<TimestampNanosecondType>()
            .clone();
        let end = column(col::END_TIME)?
            .as_primitive::<TimestampNanosecondType>()
            .clone();
        let duration = column(col::DURATION_NS)?
            .as_primitive::<Int64Type>()
            .clone();
        let services = DictColumn::of(batch, col::SERVICE_NAME)?;
        let names = DictColumn::of(batch, col::SPAN_NAME)?;
        let db = DictColumn::of(batch, col::DB_SYSTEM)?;
        let peer_service = DictColumn::of(batch, col::PEER_SERVICE)?;
        let server_address = DictColumn::of(batch, col::SERVER_ADDRESS)?;
        let messaging = DictColumn::of(batch, col::MESSAGING_SYSTEM)?;
        // One Arc per distinct service, operation and peer string in this
        // batch: a string per span would be an allocation per span, and
        // its free when the span leaves the store.
        let mut interned: HashMap<u32, Arc<str>> = HashMap::new();
        let mut interned_ops: HashMap<u32, Arc<str>> = HashMap::new();
        // Peers come from several columns: by name.
        let mut interned_peers: HashMap<&str, Arc<str>> = HashMap::new();
        for row in 0..batch.num_rows() {
            let (Ok(t), Ok(s)) = (
                <[u8; 16]>::try_from(trace.value(row)),
                <[u8; 8]>::try_from(span_id.value(row)),
            ) else {
                continue;
            };
            let (sk, sname) = services.get(row).unwrap_or((u32::MAX, "unknown_service"));
            let service = Arc::clone(interned.entry(sk).or_insert_with(|| Arc::from(sname)));
            let (nk, name) = names.get(row).unwrap_or((u32::MAX, ""));
            let operation = Arc::clone(interned_ops.entry(nk).or_insert_with(|| Arc::from(name)));
            let k = kinds.value(row);
            let peer = if let Some(system) = db.get(row) {
                let name = shared(
                    &mut interned_peers,
                    peer_service.get(row).unwrap_or(system).1,
                );
                Some((name, ConnectionType::Database))
            } else if k == kind::PRODUCER {
                messaging.get(row).map(|(_, v)| {
                    (
                        shared(&mut interned_peers, v),
                        ConnectionType::MessagingSystem,
                    )
                })
            } else if k == kind::CLIENT {
                peer_service
                    .get(row)
                    .or_else(|| server_address.get(row))
                    .map(|(_, v)| (shared(&mut interned_peers, v), ConnectionType::VirtualNode))
            } else {
                None
            };
            let code = codes.value(row);
            let span = Pending {
                service,
                operation,
                kind: k,
                status: code,
                start_ns: start.value(row),
                end_ns: end.value(row),
                duration_us: u64::try_from(duration.value(row) / 1000).unwrap_or(0),
                error: code == status::ERROR,
                peer,
                paired: false,
                children: Vec::new(),
                next: NIL,
            };
            let parent_id = (!parent.is_null(row))
                .then(|| <[u8; 8]>::try_from(parent.value(row)).ok())
                .flatten();
            self.add(edges, t, s, parent_id, span);
        }
        self.expire(edges);
        Ok(())
    }

    fn add(
        &mut self,
        edges: &mut SeriesSet<EdgeKey>,
        trace: [u8; 16],
        id: [u8; 8],
        parent: Option<[u8; 8]>,
        mut span: Pending,
    ) {
        self.watermark_ns = self.watermark_ns.max(span.end_ns);
        // A database call has no instrumented child: its edge is known now.
        let is_db_call = matches!(span.peer, Some((_, ConnectionType::Database)))
            && matches!(span.kind, kind::CLIENT | kind::UNSPECIFIED | kind::INTERNAL);
        if let (true, Some((server, connection))) = (is_db_call, span.peer.clone()) {
            {
                record_edge(
                    edges,
                    &span.service,
                    server,
                    connection,
                    span.start_ns,
                    span.duration_us,
                    span.error,
                );
                span.paired = true;
            }
        }
        if let Some(p) = parent {
            match self.spans.get(&(trace, p)) {
                Some(&i) => {
                    let parent_span = &mut self.slots[i as usize];
                    parent_span.children.push((span.start_ns, span.end_ns));
                    pair(edges, &mut self.server_side, parent_span, &span);
                }
                None => {
                    let mut copy = span.clone();
                    copy.next = self.waiting.get(&(trace, p)).copied().unwrap_or(NIL);
                    let i = self.alloc(copy);
                    self.waiting.insert((trace, p), i);
                    self.waiting_spans += 1;
                    self.order.push_back((span.end_ns, (trace, p), true));
                }
            }
        }
        if let Some(mut i) = self.waiting.remove(&(trace, id)) {
            while i != NIL {
                let child = &self.slots[i as usize];
                span.children.push((child.start_ns, child.end_ns));
                pair(edges, &mut self.server_side, &mut span, child);
                let next = child.next;
                self.free.push(i);
                self.waiting_spans -= 1;
                i = next;
            }
        }
        self.order.push_back((span.end_ns, (trace, id), false));
        let i = self.alloc(span);
        if let Some(old) = self.spans.insert((trace, id), i) {
            // A duplicate span id: the later span replaces the earlier.
            self.free.push(old);
        }
        // Every waiting span has at least one entry in `order`, so bounding
        // `order` bounds the store, duplicates and a stalled clock included.
        while self.order.len() > self.settings.max_pending {
            let Some((_, key, waiting)) = self.order.pop_front() else {
                break;
            };
            let n = self.drop_entry(edges, key, waiting);
            self.evicted += n;
        }
    }

    /// Drops what waits under `key`; returns how many spans left unpaired.
    fn drop_entry(&mut self, edges: &mut SeriesSet<EdgeKey>, key: SpanRef, waiting: bool) -> u64 {
        if waiting {
            let mut n = 0;
            let mut i = self.waiting.remove(&key).unwrap_or(NIL);
            while i != NIL {
                self.free.push(i);
                n += 1;
                i = self.slots[i as usize].next;
            }
            self.waiting_spans -= n as usize;
            self.unpaired += n;
            return n;
        }
        let Some(i) = self.spans.remove(&key) else {
            return 0;
        };
        self.free.push(i);
        let span = &mut self.slots[i as usize];
        let self_ns = self_time_ns(span.start_ns, span.end_ns, &mut span.children);
        self.finished.push((
            RedKey {
                service: Arc::clone(&span.service),
                operation: Arc::clone(&span.operation),
                kind: span.kind,
                status: span.status,
            },
            span.start_ns,
            u64::try_from(self_ns / 1000).unwrap_or(0),
        ));
        if span.paired || !matches!(span.kind, kind::CLIENT | kind::PRODUCER) {
            return 0;
        }
        match &span.peer {
            Some((server, connection)) => {
                record_edge(
                    edges,
                    &span.service,
                    Arc::clone(server),
                    *connection,
                    span.start_ns,
                    span.duration_us,
                    span.error,
                );
                0
            }
            None => {
                self.unpaired += 1;
                1
            }
        }
    }

    /// Expires what waited longer than the TTL of event time.
    fn expire(&mut self, edges: &mut SeriesSet<EdgeKey>) {
        let horizon = self.watermark_ns.saturating_sub(self.settings.ttl_ns);
        while let Some(&(end, key, waiting)) = self.order.front() {
            if end > horizon {
                break;
            }
            self.order.pop_front();
            self.drop_entry(edges, key, waiting);
        }
    }

    /// Expires everything now (shutdown, end of a replay).
    pub fn flush(&mut self, edges: &mut SeriesSet<EdgeKey>) {
        while let Some((_, key, waiting)) = self.order.pop_front() {
            self.drop_entry(edges, key, waiting);
        }
    }
}

/// The one `Arc` of `name` in `map`, made on first use.
fn shared<'a>(map: &mut HashMap<&'a str, Arc<str>>, name: &'a str) -> Arc<str> {
    Arc::clone(map.entry(name).or_insert_with(|| Arc::from(name)))
}

/// Records the edge between a parent span and its child, if they are in
/// different services (or are a CLIENT/SERVER or PRODUCER/CONSUMER pair).
fn pair(
    edges: &mut SeriesSet<EdgeKey>,
    server_side: &mut HashMap<EdgeKey, Totals, RandomState>,
    parent: &mut Pending,
    child: &Pending,
) {
    let connection = match (parent.kind, child.kind) {
        (kind::PRODUCER, kind::CONSUMER) => ConnectionType::MessagingSystem,
        _ => ConnectionType::Direct,
    };
    if parent.service == child.service {
        // An internal call, not an edge.
        return;
    }
    // The caller's view of the duration when it has one.
    let duration = if matches!(parent.kind, kind::CLIENT | kind::PRODUCER) {
        parent.duration_us
    } else {
        child.duration_us
    };
    let server = Arc::clone(&child.service);
    let key = record_edge(
        edges,
        &parent.service,
        server,
        connection,
        parent.start_ns,
        duration,
        parent.error || child.error,
    );
    if matches!(child.kind, kind::SERVER | kind::CONSUMER) {
        // Keys come from `admit`, so this map is bounded like the edges.
        server_side
            .entry(key)
            .or_default()
            .record(child.duration_us, child.error, 1);
    }
    parent.paired = true;
}

fn record_edge(
    edges: &mut SeriesSet<EdgeKey>,
    client: &Arc<str>,
    server: Arc<str>,
    connection: ConnectionType,
    t_ns: i64,
    duration_us: u64,
    error: bool,
) -> EdgeKey {
    let key = edges.admit(EdgeKey {
        client: Arc::clone(client),
        server,
        connection,
    });
    edges.record(&key, t_ns, duration_us, error);
    key
}

#[cfg(test)]
mod tests;

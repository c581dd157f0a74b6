//! The write-ahead log of accepted requests: what the receiver told a
//! client was accepted is on disk before the client hears so, and is
//! replayed at start into the processor when the processor's own stores
//! had not yet saved it.
//!
//! ```text
//! receiver ─append (before the ack)─> WAL segments ─replay at start─> processor queue
//! processor checkpoint (cells, catalog, span files) ─mark─> release: segments before the mark go
//! ```
//!
//! A record holds the tenant, the transport and the request bytes
//! (`[tenant len u8][tenant][transport u8][request]`) in a
//! [`DiskQueue`] record of kind [`Kind::Accepted`]. The position after a
//! record names it: the processor's mark is the position after the last
//! record whose effects its stores hold.

use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use causeway_model::{AcceptLog, AcceptLogError, LogPosition, TenantId, TraceBatch, Transport};

use crate::queue::{AppendError, DiskQueue, Kind, Position};

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before each request is acknowledged: survives a power loss, at the
    /// cost of one fsync per request.
    Always,
    /// At most this long after a record was appended (a background task
    /// calls [`Wal::sync`]); a process crash loses nothing (the page cache
    /// outlives the process), a power loss at most this interval.
    Interval(Duration),
    /// Never explicitly: the kernel writes back on its own (about 30 s).
    Never,
}

/// One replayed record.
#[derive(Debug, Clone)]
pub struct WalRecord {
    /// Whose request.
    pub tenant: TenantId,
    /// How it came.
    pub transport: Transport,
    /// Spans in it.
    pub spans: u32,
    /// The `ExportTraceServiceRequest` bytes, as accepted.
    pub payload: Bytes,
    /// The position after it (its mark).
    pub next: Position,
}

/// The log.
#[derive(Debug)]
pub struct Wal {
    queue: DiskQueue,
    fsync: Fsync,
    last_sync: Mutex<Instant>,
}

fn transport_byte(t: Transport) -> u8 {
    match t {
        Transport::Grpc => 1,
        Transport::HttpProtobuf => 2,
        Transport::HttpJson => 3,
        Transport::File => 4,
    }
}

fn transport_of(b: u8) -> Option<Transport> {
    match b {
        1 => Some(Transport::Grpc),
        2 => Some(Transport::HttpProtobuf),
        3 => Some(Transport::HttpJson),
        4 => Some(Transport::File),
        _ => None,
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir`, holding at most `max_bytes` of
    /// records not yet released.
    pub fn open(dir: &Path, max_bytes: u64, fsync: Fsync) -> io::Result<Self> {
        Ok(Self {
            queue: DiskQueue::open(dir, max_bytes)?,
            fsync,
            last_sync: Mutex::new(Instant::now()),
        })
    }

    /// Appends one accepted request; returns its mark. Refuses (the
    /// request must then be refused, retryably) when the log is full: the
    /// processor has not saved enough to release older records.
    pub fn append(
        &self,
        tenant: &TenantId,
        transport: Transport,
        spans: u64,
        payload: &[u8],
    ) -> Result<Position, AppendError> {
        let name = tenant.as_str().as_bytes();
        let mut prefix = Vec::with_capacity(2 + name.len());
        // Tenant ids are at most 64 bytes (`TenantId`).
        prefix.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        prefix.extend_from_slice(name);
        prefix.push(transport_byte(transport));
        // The request is written as it is, not copied behind the prefix.
        let mark = self.queue.append_parts(
            Kind::Accepted,
            u32::try_from(spans).unwrap_or(u32::MAX),
            &[&prefix, payload],
        )?;
        if self.fsync == Fsync::Always {
            self.queue.sync()?;
        }
        Ok(mark)
    }

    /// Forces appended records to disk if the policy asks for it now.
    pub fn sync_due(&self) -> io::Result<()> {
        if let Fsync::Interval(every) = self.fsync {
            let mut last = self.last_sync.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= every {
                *last = Instant::now();
                drop(last);
                return self.queue.sync();
            }
        }
        Ok(())
    }

    /// Forces appended records to disk.
    pub fn sync(&self) -> io::Result<()> {
        self.queue.sync()
    }

    /// A reader of every record after `mark` (all held records without
    /// one), oldest first: what the processor's stores do not hold yet.
    /// It reads one record at a time, so a replay holds one in memory.
    pub fn after(&self, mark: Option<Position>) -> WalReader<'_> {
        let mut pos = self.queue.head();
        if let Some(m) = mark
            && m > pos
        {
            pos = m;
        }
        WalReader { wal: self, pos }
    }

    /// Releases every record before `mark` (the processor's stores hold
    /// their effects): their segments are deleted.
    pub fn release(&self, mark: Position) -> io::Result<()> {
        self.queue.ack(mark)
    }

    /// Starts a new segment, so that records released from now on take
    /// their segment's bytes with them (a deleted tenant's records are
    /// gone from disk at the next release, not when the segment fills).
    pub fn roll(&self) -> io::Result<()> {
        self.queue.roll()
    }

    /// The position of the first record not released.
    pub fn head(&self) -> Position {
        self.queue.head()
    }

    /// Bytes of records not released.
    pub fn held_bytes(&self) -> u64 {
        self.queue.held_bytes()
    }
}

/// Reads records in order; see [`Wal::after`].
#[derive(Debug)]
pub struct WalReader<'a> {
    wal: &'a Wal,
    pos: Position,
}

impl WalReader<'_> {
    /// The next record, `None` at the end.
    pub fn next_record(&mut self) -> io::Result<Option<WalRecord>> {
        while let Some(r) = self.wal.queue.read_at(self.pos)? {
            self.pos = r.next;
            if r.kind != Kind::Accepted {
                continue;
            }
            match decode(&r.payload) {
                Some((tenant, transport, payload)) => {
                    return Ok(Some(WalRecord {
                        tenant,
                        transport,
                        spans: r.items,
                        payload,
                        next: r.next,
                    }));
                }
                None => tracing::error!("write-ahead log: a record that names no tenant; skipped"),
            }
        }
        Ok(None)
    }

    /// Every remaining record (tests and small logs).
    pub fn collect_all(mut self) -> io::Result<Vec<WalRecord>> {
        let mut out = Vec::new();
        while let Some(r) = self.next_record()? {
            out.push(r);
        }
        Ok(out)
    }
}

impl AcceptLog for Wal {
    fn append(&self, batch: &TraceBatch) -> Result<LogPosition, AcceptLogError> {
        Wal::append(
            self,
            &batch.tenant,
            batch.transport,
            batch.spans,
            &batch.payload,
        )
        .map_err(|e| match e {
            AppendError::Full { held, max } => AcceptLogError::Full { held, max },
            other => AcceptLogError::Io(other.to_string()),
        })
    }

    fn waits_for_disk(&self) -> bool {
        self.fsync == Fsync::Always
    }
}

fn decode(record: &Bytes) -> Option<(TenantId, Transport, Bytes)> {
    let len = usize::from(*record.first()?);
    let name = std::str::from_utf8(record.get(1..1 + len)?).ok()?;
    let tenant = TenantId::new(name).ok()?;
    let transport = transport_of(*record.get(1 + len)?)?;
    Some((tenant, transport, record.slice(2 + len..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("causeway-wal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn records_replay_after_a_mark_and_released_ones_are_gone_after_reopen() {
        let d = dir("replay");
        let acme = TenantId::new("acme").expect("tenant");
        let globex = TenantId::new("globex").expect("tenant");
        let marks: Vec<Position> = {
            let wal = Wal::open(&d, 1 << 20, Fsync::Always).expect("open");
            (0..5u8)
                .map(|i| {
                    let t = if i % 2 == 0 { &acme } else { &globex };
                    wal.append(t, Transport::HttpJson, u64::from(i), &[i; 10])
                        .expect("append")
                })
                .collect()
        };
        let wal = Wal::open(&d, 1 << 20, Fsync::Never).expect("reopen");
        let all = wal.after(None).collect_all().expect("read");
        assert_eq!(all.len(), 5);
        assert_eq!(all[1].tenant, globex);
        assert_eq!(all[1].transport, Transport::HttpJson);
        assert_eq!(all[1].payload.as_ref(), &[1u8; 10]);
        assert_eq!(all[3].spans, 3);
        let after = wal.after(Some(marks[2])).collect_all().expect("read");
        assert_eq!(after.len(), 2);
        assert_eq!(after[0].payload.as_ref(), &[3u8; 10]);
        wal.release(marks[2]).expect("release");
        drop(wal);
        let wal = Wal::open(&d, 1 << 20, Fsync::Never).expect("reopen");
        assert_eq!(wal.after(None).collect_all().expect("read").len(), 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_roll_lets_the_next_release_delete_every_released_byte() {
        let d = dir("roll");
        let acme = TenantId::new("acme").expect("tenant");
        let wal = Wal::open(&d, 1 << 20, Fsync::Never).expect("open");
        let first = wal
            .append(&acme, Transport::Grpc, 1, b"secret-of-acme")
            .expect("append");
        wal.roll().expect("roll");
        let second = wal
            .append(&acme, Transport::Grpc, 1, b"later")
            .expect("append");
        // Released up to the end of the rolled segment: its file goes.
        wal.release(first).expect("release");
        let bytes: Vec<u8> = std::fs::read_dir(&d)
            .expect("dir")
            .flat_map(|e| std::fs::read(e.expect("entry").path()).unwrap_or_default())
            .collect();
        assert!(
            !bytes.windows(6).any(|w| w == b"secret"),
            "a released record's bytes stayed on disk"
        );
        let left = wal.after(Some(first)).collect_all().expect("read");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].next, second);
        let _ = std::fs::remove_dir_all(&d);
    }
}

//! A bounded, persistent FIFO of requests: append-only segment files and a
//! cursor, so that what the receiver acknowledged survives a downstream
//! outage, a crash and a restart. Forwarding queues send from it; the
//! write-ahead log replays from it.
//!
//! ```text
//! dir/00000000000000000007.seg   records [len u32][crc32 u32][kind u8][items u32][payload]
//! dir/00000000000000000008.seg   <- appends go to the newest segment
//! dir/cursor                     (segment u64, offset u64) of the first unsent record
//! ```
//!
//! The cursor moves only after the downstream accepted a record, and is
//! replaced atomically (write, rename), so a process crash at any point
//! re-sends at most the one record that was in flight (a power loss, a
//! few more: the cursor is not fsynced per record). A record torn by a
//! crash mid-append fails its checksum and is cut off at open.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use causeway_model::TenantId;

/// A segment is closed and a new one started beyond this many bytes, so
/// sent data is deleted in pieces rather than held until the queue empties.
const SEGMENT_BYTES: u64 = 8 << 20;
const HEADER: usize = 13;
/// A record longer than this is corruption, not data (the receiver's own
/// limit on a request is far below).
const MAX_RECORD: u32 = 1 << 30;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ExportTraceServiceRequest`.
    Traces,
    /// `ExportLogsServiceRequest`.
    Logs,
    /// An accepted request in the write-ahead log: tenant, transport and
    /// the `ExportTraceServiceRequest` (see `crate::wal`).
    Accepted,
    /// [`Kind::Traces`] of one tenant: the payload starts with the tenant
    /// ([`tag_tenant`]), so the tenant's deletion can find it.
    TenantTraces,
    /// [`Kind::Logs`] of one tenant.
    TenantLogs,
}

impl Kind {
    fn to_byte(self) -> u8 {
        match self {
            Kind::Traces => 1,
            Kind::Logs => 2,
            Kind::Accepted => 3,
            Kind::TenantTraces => 4,
            Kind::TenantLogs => 5,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Kind::Traces),
            2 => Some(Kind::Logs),
            3 => Some(Kind::Accepted),
            4 => Some(Kind::TenantTraces),
            5 => Some(Kind::TenantLogs),
            _ => None,
        }
    }
}

/// `tenant` then `body`, as [`Kind::TenantTraces`] and [`Kind::TenantLogs`]
/// records hold them (`[name length u8][name][body]`).
pub fn tag_tenant(tenant: &TenantId, body: &[u8]) -> Vec<u8> {
    let mut out = tenant_tag(tenant);
    out.extend_from_slice(body);
    out
}

/// The prefix [`tag_tenant`] puts before a body (for
/// [`DiskQueue::append_parts`], which writes the body without copying it).
pub fn tenant_tag(tenant: &TenantId) -> Vec<u8> {
    let name = tenant.as_str().as_bytes();
    let mut out = Vec::with_capacity(1 + name.len());
    // Tenant ids are at most 64 bytes (`TenantId`).
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name);
    out
}

/// The tenant and body of a [`tag_tenant`] payload.
pub fn untag_tenant(payload: &Bytes) -> Option<(TenantId, Bytes)> {
    let len = usize::from(*payload.first()?);
    let name = std::str::from_utf8(payload.get(1..1 + len)?).ok()?;
    Some((TenantId::new(name).ok()?, payload.slice(1 + len..)))
}

/// One queued request.
#[derive(Debug, Clone)]
pub struct Record {
    /// What the payload is.
    pub kind: Kind,
    /// Spans or log records in it.
    pub items: u32,
    /// Protobuf bytes.
    pub payload: Bytes,
    /// Where the record after this one starts: pass to [`DiskQueue::ack`].
    pub next: Position,
}

impl Record {
    /// The tenant of a tenant-tagged record.
    pub fn tenant(&self) -> Option<TenantId> {
        match self.kind {
            Kind::TenantTraces | Kind::TenantLogs => untag_tenant(&self.payload).map(|(t, _)| t),
            _ => None,
        }
    }

    /// The record as sent downstream: a tenant-tagged record becomes its
    /// untagged kind and body.
    pub fn untagged(self) -> Record {
        let kind = match self.kind {
            Kind::TenantTraces => Kind::Traces,
            Kind::TenantLogs => Kind::Logs,
            other => {
                return Record {
                    kind: other,
                    ..self
                };
            }
        };
        match untag_tenant(&self.payload) {
            Some((_, body)) => Record {
                kind,
                payload: body,
                ..self
            },
            None => Record { kind, ..self },
        }
    }
}

/// A place in the queue (the model's type: the processor carries it in
/// each batch it takes from the write-ahead log).
pub use causeway_model::LogPosition as Position;

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The queue holds its maximum.
    #[error("the queue is full ({held} of {max} bytes held)")]
    Full {
        /// Bytes held.
        held: u64,
        /// The limit.
        max: u64,
    },
    /// The disk failed.
    #[error("writing the queue: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug)]
struct Writer {
    segment: u64,
    len: u64,
    file: File,
    /// Appended since the last fsync.
    dirty: bool,
}

#[derive(Debug)]
struct State {
    writer: Writer,
    /// First unsent record.
    head: Position,
    /// Bytes of unsent records.
    held: u64,
    /// The oldest segment file that may still exist.
    oldest: u64,
    /// A committed rewrite could not be finished: appends are refused until
    /// the queue is opened again (which finishes it).
    broken: bool,
}

#[derive(Debug)]
struct Reader {
    segment: u64,
    file: Option<File>,
}

/// The queue. Appends come from the receiver's tasks, reads from one sender.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    reader: Mutex<Reader>,
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`, cutting off a torn last record.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        rewrite::recover(dir)?;
        let mut segments = list_segments(dir)?;
        let cursor = read_cursor(dir)?;
        let head = match (cursor, segments.first()) {
            (Some(c), Some(first)) if c.segment >= *first => c,
            (_, Some(first)) => Position {
                segment: *first,
                offset: 0,
            },
            (_, None) => Position {
                segment: cursor.map_or(0, |c| c.segment),
                offset: 0,
            },
        };
        // Segments entirely before the cursor were sent; a crash between
        // moving the cursor and deleting them leaves them behind.
        for s in segments.iter().filter(|s| **s < head.segment) {
            let _ = fs::remove_file(segment_path(dir, *s));
        }
        segments.retain(|s| *s >= head.segment);
        let last = segments.last().copied().unwrap_or(head.segment);
        let path = segment_path(dir, last);
        let valid = valid_length(&path)?;
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() != valid {
            tracing::warn!(
                file = %path.display(),
                kept = valid,
                "disk queue: cutting off a record torn by a crash"
            );
            file.set_len(valid)?;
        }
        let mut held = 0;
        for s in &segments {
            held += if *s == last {
                valid
            } else {
                fs::metadata(segment_path(dir, *s))?.len()
            };
        }
        let head = if head.segment == last && head.offset > valid {
            // The cursor points past what survived: nothing left to send.
            Position {
                segment: last,
                offset: valid,
            }
        } else {
            head
        };
        held = held.saturating_sub(head.offset);
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::new(State {
                writer: Writer {
                    segment: last,
                    len: valid,
                    file,
                    dirty: false,
                },
                head,
                held,
                oldest: head.segment,
                broken: false,
            }),
            reader: Mutex::new(Reader {
                segment: u64::MAX,
                file: None,
            }),
        })
    }

    /// The most bytes of unsent records the queue holds.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes a record of a `payload_len`-byte payload takes.
    pub fn record_size(payload_len: usize) -> u64 {
        HEADER as u64 + payload_len as u64
    }

    /// Bytes of unsent records.
    pub fn held_bytes(&self) -> u64 {
        self.lock_state().held
    }

    /// Appends one record; refuses when the queue would exceed its limit.
    /// Returns where the record after it will start (what acknowledging
    /// it up to and including this record takes).
    pub fn append(&self, kind: Kind, items: u32, payload: &[u8]) -> Result<Position, AppendError> {
        self.append_parts(kind, items, &[payload])
    }

    /// [`DiskQueue::append`] of a payload given in parts (a prefix and a
    /// request, say), without copying them into one buffer first.
    pub fn append_parts(
        &self,
        kind: Kind,
        items: u32,
        parts: &[&[u8]],
    ) -> Result<Position, AppendError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(total)
            .ok()
            .filter(|l| *l < MAX_RECORD)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        let size = HEADER as u64 + u64::from(len);
        // The checksum before the lock: appends of other requests do not
        // wait for this one's.
        let header = encode_header(kind, items, parts, len);
        let mut st = self.lock_state();
        if st.broken {
            return Err(
                io::Error::other("the queue needs reopening after a failed rewrite").into(),
            );
        }
        if st.held + size > self.max_bytes {
            return Err(AppendError::Full {
                held: st.held,
                max: self.max_bytes,
            });
        }
        let closed = if st.writer.len >= SEGMENT_BYTES {
            self.next_segment(&mut st)?
        } else {
            None
        };
        // One write per part; a crash between them leaves a torn record that
        // the checksum catches at open.
        let w = &mut st.writer;
        let written = w
            .file
            .write_all(&header)
            .and_then(|()| parts.iter().try_for_each(|p| w.file.write_all(p)));
        if let Err(e) = written {
            // Undo a partial append so the next one starts at a record
            // boundary.
            let _ = w.file.set_len(w.len);
            return Err(e.into());
        }
        w.len += size;
        w.dirty = true;
        let end = Position {
            segment: w.segment,
            offset: w.len,
        };
        st.held += size;
        drop(st);
        // The closed segment's last writes, outside the lock (the current
        // segment's are synced by `sync`).
        if let Some(f) = closed
            && let Err(e) = f.sync_data()
        {
            tracing::error!(dir = %self.dir.display(), error = %e, "disk queue: cannot sync a closed segment");
        }
        Ok(end)
    }

    /// Starts the next segment; returns the closed one's file when it
    /// holds writes not yet synced, for the caller to sync once the lock
    /// is released.
    fn next_segment(&self, st: &mut State) -> io::Result<Option<File>> {
        if st.broken {
            return Err(io::Error::other(
                "the queue needs reopening after a failed rewrite",
            ));
        }
        let segment = st.writer.segment + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, segment))?;
        let old = std::mem::replace(
            &mut st.writer,
            Writer {
                segment,
                len: 0,
                file,
                dirty: false,
            },
        );
        Ok(old.dirty.then_some(old.file))
    }

    /// Closes the segment being written (if it holds anything) and starts
    /// a new one, so that the bytes of the records acknowledged so far can
    /// be deleted as soon as the head passes them: a purge does not wait
    /// for the segment to fill.
    pub fn roll(&self) -> io::Result<()> {
        let closed = {
            let mut st = self.lock_state();
            if st.writer.len == 0 {
                return Ok(());
            }
            self.next_segment(&mut st)?
        };
        match closed {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// The first unsent record, or `None` when everything was sent.
    pub fn peek(&self) -> io::Result<Option<Record>> {
        let head = self.lock_state().head;
        self.read_at(head)
    }

    /// The first unsent record: where [`Self::read_at`] starts.
    pub fn head(&self) -> Position {
        self.lock_state().head
    }

    /// The record at `pos` (a [`Self::head`] or a [`Record::next`]), or
    /// `None` at the end of what was appended. Reading does not consume:
    /// the sender reads ahead of what the downstream has acknowledged and
    /// acknowledges in order.
    pub fn read_at(&self, mut pos: Position) -> io::Result<Option<Record>> {
        let tail = {
            let st = self.lock_state();
            // Acknowledged meanwhile (its segment may be gone): go on from
            // the head.
            pos = pos.max(st.head);
            (st.writer.segment, st.writer.len)
        };
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if pos.segment > tail.0 || (pos.segment == tail.0 && pos.offset >= tail.1) {
                return Ok(None);
            }
            if reader.segment != pos.segment || reader.file.is_none() {
                reader.file = Some(File::open(segment_path(&self.dir, pos.segment))?);
                reader.segment = pos.segment;
            }
            let end = if pos.segment == tail.0 {
                tail.1
            } else {
                fs::metadata(segment_path(&self.dir, pos.segment))?.len()
            };
            if pos.offset >= end {
                // The end of a closed segment: go on with the next.
                pos = Position {
                    segment: pos.segment + 1,
                    offset: 0,
                };
                reader.file = None;
                continue;
            }
            let Some(file) = reader.file.as_mut() else {
                continue;
            };
            match read_record(file, pos.offset, end) {
                Ok((kind, items, payload, size)) => {
                    return Ok(Some(Record {
                        kind,
                        items,
                        payload,
                        next: Position {
                            segment: pos.segment,
                            offset: pos.offset + size,
                        },
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    // Corruption inside a segment (the disk, not a crash:
                    // torn tails are cut at open). The rest of this segment
                    // cannot be framed; skip to the next one (its bytes are
                    // freed when the cursor passes them).
                    tracing::error!(
                        segment = pos.segment,
                        offset = pos.offset,
                        error = %e,
                        "disk queue: corrupt record; skipping the rest of its segment"
                    );
                    if pos.segment == tail.0 {
                        return Ok(None);
                    }
                    pos = Position {
                        segment: pos.segment + 1,
                        offset: 0,
                    };
                    reader.file = None;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Marks everything before `next` as sent: moves the persisted cursor
    /// and deletes segments left behind.
    pub fn ack(&self, mut next: Position) -> io::Result<()> {
        let stale = {
            let mut st = self.lock_state();
            // The end of a closed segment is the start of the next one:
            // the whole segment can go.
            while next.segment < st.writer.segment
                && fs::metadata(segment_path(&self.dir, next.segment))
                    .is_ok_and(|m| next.offset >= m.len())
            {
                next = Position {
                    segment: next.segment + 1,
                    offset: 0,
                };
            }
            if next <= st.head {
                return Ok(());
            }
            let old = st.head;
            // What lies between the old head and `next`: the rest of the
            // head's segment and every closed segment up to `next`'s (read
            // ahead may have crossed several).
            let mut freed = 0;
            for segment in old.segment..next.segment {
                let len = if segment == st.writer.segment {
                    st.writer.len
                } else {
                    fs::metadata(segment_path(&self.dir, segment)).map_or(0, |m| m.len())
                };
                let from = if segment == old.segment {
                    old.offset
                } else {
                    0
                };
                freed += len.saturating_sub(from);
            }
            freed += if next.segment == old.segment {
                next.offset - old.offset
            } else {
                next.offset
            };
            st.held = st.held.saturating_sub(freed);
            st.head = next;
            let stale = st.oldest..next.segment;
            st.oldest = next.segment;
            stale
        };
        write_cursor(&self.dir, next)?;
        for s in stale {
            let _ = fs::remove_file(segment_path(&self.dir, s));
        }
        Ok(())
    }

    /// Flushes appended records to disk. The fsync runs outside the lock
    /// (on a second handle of the same file): appends, which run on the
    /// receiver's async workers, never wait for the disk.
    pub fn sync(&self) -> io::Result<()> {
        let file = {
            let mut st = self.lock_state();
            if !st.writer.dirty {
                return Ok(());
            }
            st.writer.dirty = false;
            st.writer.file.try_clone()?
        };
        file.sync_data().inspect_err(|_| {
            // Not synced after all: the next call tries again.
            self.lock_state().writer.dirty = true;
        })
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters (every
        // update is a single assignment after the I/O), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.seg"))
}

fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".seg")
            && let Ok(n) = stem.parse::<u64>()
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn read_cursor(dir: &Path) -> io::Result<Option<Position>> {
    match fs::read(dir.join("cursor")) {
        Ok(b) if b.len() == 16 => {
            let mut seg = [0u8; 8];
            let mut off = [0u8; 8];
            seg.copy_from_slice(&b[..8]);
            off.copy_from_slice(&b[8..]);
            Ok(Some(Position {
                segment: u64::from_le_bytes(seg),
                offset: u64::from_le_bytes(off),
            }))
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a queue cursor", dir.join("cursor").display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_cursor(dir: &Path, pos: Position) -> io::Result<()> {
    let tmp = dir.join("cursor.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&pos.segment.to_le_bytes())?;
    f.write_all(&pos.offset.to_le_bytes())?;
    // No fsync per acknowledgement (it would bound the sender at about a
    // thousand requests a second): the rename is atomic, a process crash
    // keeps the page cache, and a power loss can only leave an older
    // cursor, which re-sends a few requests rather than losing any.
    fs::rename(tmp, dir.join("cursor"))
}

/// Reads the record at `offset`, checking that it ends by `end`.
fn read_record(file: &mut File, offset: u64, end: u64) -> io::Result<(Kind, u32, Bytes, u64)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_owned());
    if end - offset < HEADER as u64 {
        return Err(bad("short header"));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut header = [0u8; HEADER];
    file.read_exact(&mut header)?;
    let (len, crc, kind, items) = parse_header(&header);
    let size = HEADER as u64 + u64::from(len);
    if len >= MAX_RECORD || offset + size > end {
        return Err(bad("record runs past the segment's end"));
    }
    let kind = Kind::from_byte(kind).ok_or_else(|| bad("unknown record kind"))?;
    let mut payload = vec![0u8; len as usize];
    file.read_exact(&mut payload)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&header[8..13]);
    h.update(&payload);
    if h.finalize() != crc {
        return Err(bad("checksum mismatch"));
    }
    Ok((kind, items, Bytes::from(payload), size))
}

/// A record's header: length, checksum of kind, items and payload, kind,
/// items.
fn encode_header(kind: Kind, items: u32, parts: &[&[u8]], len: u32) -> [u8; HEADER] {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind.to_byte()]);
    crc.update(&items.to_le_bytes());
    for p in parts {
        crc.update(p);
    }
    let mut header = [0u8; HEADER];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    header[8] = kind.to_byte();
    header[9..13].copy_from_slice(&items.to_le_bytes());
    header
}

fn parse_header(h: &[u8; HEADER]) -> (u32, u32, u8, u32) {
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    (u32_at(0), u32_at(4), h[8], u32_at(9))
}

/// The length of the longest prefix of whole, intact records.
fn valid_length(path: &Path) -> io::Result<u64> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let end = file.metadata()?.len();
    let mut offset = 0;
    while offset < end {
        match read_record(&mut file, offset, end) {
            Ok((_, _, _, size)) => offset += size,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                ) =>
            {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(offset)
}

mod rewrite;
#[cfg(test)]
mod tests;

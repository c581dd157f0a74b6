//! Rewriting a queue without some of its records: a tenant's deletion
//! reaches the records still waiting to be sent.
//!
//! The kept records are copied into new segments, numbered after every
//! existing one, in a staging directory; a marker file then commits the
//! rewrite, the new segments move in, the cursor moves to the first of
//! them and the old segments go. [`recover`] finishes a committed rewrite
//! a crash interrupted, or drops an uncommitted one (the old segments are
//! still whole), so a crash never both sends a deleted record and loses a
//! kept one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use bytes::Bytes;

use super::{
    DiskQueue, HEADER, Kind, Position, SEGMENT_BYTES, Writer, encode_header, list_segments,
    read_record, segment_path, write_cursor,
};

/// Names the first new segment while a rewrite is committed but not done.
const MARKER: &str = "rewrite";
/// Where new segments are written before the commit.
const STAGING: &str = "rewrite.d";

impl DiskQueue {
    /// Rewrites the unsent records, keeping those `keep` accepts; returns
    /// how many went. Appends wait meanwhile. Positions of kept records
    /// change: the caller must have stopped reading ahead (the sender is
    /// paused) and read again from [`DiskQueue::head`].
    pub fn rewrite(&self, keep: impl Fn(Kind, &Bytes) -> bool) -> io::Result<u64> {
        let mut st = self.lock_state();
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        reader.file = None;
        reader.segment = u64::MAX;
        let staging = self.dir.join(STAGING);
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        let first = st.writer.segment + 1;
        let mut out = Out {
            segment: first,
            len: 0,
            file: File::create(segment_path(&staging, first))?,
        };
        let (mut dropped, mut held) = (0u64, 0u64);
        for segment in st.head.segment..=st.writer.segment {
            let path = segment_path(&self.dir, segment);
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let end = if segment == st.writer.segment {
                st.writer.len
            } else {
                file.metadata()?.len()
            };
            let mut offset = if segment == st.head.segment {
                st.head.offset
            } else {
                0
            };
            while offset < end {
                match read_record(&mut file, offset, end) {
                    Ok((kind, items, payload, size)) => {
                        offset += size;
                        if keep(kind, &payload) {
                            out.write(&staging, kind, items, &payload)?;
                            held += size;
                        } else {
                            dropped += 1;
                        }
                    }
                    // A damaged stretch (the disk's doing): the sender
                    // would skip the rest of the segment too.
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => break,
                    Err(e) => return Err(e),
                }
            }
        }
        out.file.sync_all()?;
        commit(&self.dir, first)?;
        // Committed: the old segments are dead. If they cannot be swapped
        // now, appends stop until the next open finishes the rewrite (an
        // append to an old segment would be deleted with it).
        if let Err(e) = finish(&self.dir, first).or_else(|_| finish(&self.dir, first)) {
            st.broken = true;
            return Err(e);
        }
        st.writer = Writer {
            segment: out.segment,
            len: out.len,
            file: OpenOptions::new()
                .append(true)
                .open(segment_path(&self.dir, out.segment))?,
            dirty: false,
        };
        st.head = Position {
            segment: first,
            offset: 0,
        };
        st.held = held;
        st.oldest = first;
        Ok(dropped)
    }
}

/// The segment being written during a rewrite.
struct Out {
    segment: u64,
    len: u64,
    file: File,
}

impl Out {
    fn write(&mut self, dir: &Path, kind: Kind, items: u32, payload: &[u8]) -> io::Result<()> {
        if self.len >= SEGMENT_BYTES {
            self.file.sync_all()?;
            self.segment += 1;
            self.len = 0;
            self.file = File::create(segment_path(dir, self.segment))?;
        }
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "record too large"))?;
        self.file
            .write_all(&encode_header(kind, items, &[payload], len))?;
        self.file.write_all(payload)?;
        self.len += HEADER as u64 + u64::from(len);
        Ok(())
    }
}

fn commit(dir: &Path, first: u64) -> io::Result<()> {
    let tmp = dir.join("rewrite.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(first.to_string().as_bytes())?;
    f.sync_all()?;
    fs::rename(tmp, dir.join(MARKER))
}

/// Moves the staged segments in, the cursor to the first, and deletes the
/// old segments; idempotent, so [`recover`] can run it again.
fn finish(dir: &Path, first: u64) -> io::Result<()> {
    let staging = dir.join(STAGING);
    if staging.exists() {
        for s in list_segments(&staging)? {
            fs::rename(segment_path(&staging, s), segment_path(dir, s))?;
        }
    }
    write_cursor(
        dir,
        Position {
            segment: first,
            offset: 0,
        },
    )?;
    for s in list_segments(dir)? {
        if s < first {
            fs::remove_file(segment_path(dir, s))?;
        }
    }
    let _ = fs::remove_dir_all(&staging);
    fs::remove_file(dir.join(MARKER))
}

/// At open: finishes a committed rewrite, or drops an uncommitted one.
pub(super) fn recover(dir: &Path) -> io::Result<()> {
    match fs::read_to_string(dir.join(MARKER)) {
        Ok(s) => {
            let first = s.trim().parse::<u64>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a rewrite marker", dir.join(MARKER).display()),
                )
            })?;
            finish(dir, first)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = fs::remove_dir_all(dir.join(STAGING));
            let _ = fs::remove_file(dir.join("rewrite.tmp"));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

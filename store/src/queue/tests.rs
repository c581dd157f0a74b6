use super::*;

/// A fresh, not yet created directory under the system's temp dir.
fn tmp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "causeway-queue-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn drain(q: &DiskQueue) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(r) = q.peek().expect("peek") {
        out.push(r.payload.to_vec());
        q.ack(r.next).expect("ack");
    }
    out
}

#[test]
fn fifo_survives_reopen_and_sends_each_record_once() {
    let dir = tmp("fifo");
    {
        let q = DiskQueue::open(&dir, 1 << 20).expect("open");
        for i in 0..10u8 {
            q.append(Kind::Traces, 1, &[i; 100]).expect("append");
        }
        // Send three, then "crash".
        for _ in 0..3 {
            let r = q.peek().expect("peek").expect("a record");
            q.ack(r.next).expect("ack");
        }
        // The fourth is in flight but never acknowledged.
        let _ = q.peek().expect("peek");
    }
    let q = DiskQueue::open(&dir, 1 << 20).expect("reopen");
    let got = drain(&q);
    assert_eq!(got.len(), 7);
    assert_eq!(got[0], vec![3u8; 100]);
    assert_eq!(got[6], vec![9u8; 100]);
    assert_eq!(q.held_bytes(), 0);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn limit_refuses_appends_and_acks_make_room() {
    let dir = tmp("limit");
    let q = DiskQueue::open(&dir, 3 * (HEADER as u64 + 100)).expect("open");
    for _ in 0..3 {
        q.append(Kind::Traces, 1, &[1; 100]).expect("append");
    }
    assert!(matches!(
        q.append(Kind::Traces, 1, &[1; 100]),
        Err(AppendError::Full { .. })
    ));
    let r = q.peek().expect("peek").expect("record");
    q.ack(r.next).expect("ack");
    q.append(Kind::Logs, 2, &[2; 100]).expect("room again");
    let kinds: Vec<Kind> = std::iter::from_fn(|| {
        let r = q.peek().expect("peek")?;
        q.ack(r.next).expect("ack");
        Some(r.kind)
    })
    .collect();
    assert_eq!(kinds, vec![Kind::Traces, Kind::Traces, Kind::Logs]);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn torn_tail_is_cut_and_earlier_records_kept() {
    let dir = tmp("torn");
    {
        let q = DiskQueue::open(&dir, 1 << 20).expect("open");
        q.append(Kind::Traces, 1, b"first").expect("append");
        q.append(Kind::Traces, 1, b"second").expect("append");
    }
    // A crash in the middle of a third append.
    let seg = segment_path(&dir, 0);
    let mut f = OpenOptions::new().append(true).open(&seg).expect("segment");
    f.write_all(&[200, 0, 0, 0, 1, 2, 3]).expect("write");
    drop(f);
    let q = DiskQueue::open(&dir, 1 << 20).expect("reopen");
    assert_eq!(drain(&q), vec![b"first".to_vec(), b"second".to_vec()]);
    q.append(Kind::Traces, 1, b"third")
        .expect("append after repair");
    assert_eq!(drain(&q), vec![b"third".to_vec()]);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn segments_roll_and_sent_ones_are_deleted() {
    let dir = tmp("roll");
    let q = DiskQueue::open(&dir, 64 << 20).expect("open");
    let big = vec![7u8; 1 << 20];
    for _ in 0..20 {
        q.append(Kind::Traces, 1, &big).expect("append");
    }
    assert!(list_segments(&dir).expect("list").len() >= 2);
    assert_eq!(drain(&q).len(), 20);
    assert_eq!(list_segments(&dir).expect("list").len(), 1);
    drop(q);
    let q = DiskQueue::open(&dir, 64 << 20).expect("reopen");
    assert!(q.peek().expect("peek").is_none());
    assert_eq!(q.held_bytes(), 0);
    let _ = fs::remove_dir_all(&dir);
}

/// The sender reads ahead of the cursor, across segments, and
/// acknowledges later: what is held shrinks by exactly what the
/// cursor passed, and finished segments go.
#[test]
fn reading_ahead_across_segments_then_acknowledging_frees_exactly() {
    let dir = tmp("ahead");
    let q = DiskQueue::open(&dir, 64 << 20).expect("open");
    let big = vec![7u8; 1 << 20];
    for _ in 0..20 {
        q.append(Kind::Traces, 1, &big).expect("append");
    }
    let all = q.held_bytes();
    let record = (HEADER + (1 << 20)) as u64;
    assert_eq!(all, 20 * record);
    // Read twelve ahead (past the first segment), nothing acknowledged.
    let mut pos = q.head();
    let mut nexts = Vec::new();
    for _ in 0..12 {
        let r = q.read_at(pos).expect("read").expect("a record");
        pos = r.next;
        nexts.push(r.next);
    }
    assert_eq!(q.held_bytes(), all, "reading does not consume");
    assert_eq!(
        q.head(),
        Position {
            segment: 0,
            offset: 0
        }
    );
    // Acknowledge the first three, then up to the twelfth at once.
    q.ack(nexts[2]).expect("ack");
    assert_eq!(q.held_bytes(), all - 3 * record);
    q.ack(nexts[11]).expect("ack");
    assert_eq!(q.held_bytes(), all - 12 * record);
    assert!(
        list_segments(&dir).expect("list")[0] > 0,
        "the first segment was deleted"
    );
    // A restart starts at the cursor.
    drop(q);
    let q = DiskQueue::open(&dir, 64 << 20).expect("reopen");
    assert_eq!(q.held_bytes(), 8 * record);
    assert_eq!(drain(&q).len(), 8);
    assert_eq!(q.held_bytes(), 0);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_middle_of_a_closed_segment_is_skipped_not_fatal() {
    let dir = tmp("corrupt");
    let q = DiskQueue::open(&dir, 64 << 20).expect("open");
    let big = vec![7u8; 3 << 20];
    for _ in 0..4 {
        q.append(Kind::Traces, 1, &big).expect("append");
    }
    q.append(Kind::Traces, 1, b"after").expect("append");
    drop(q);
    // Flip a payload byte of the first record.
    let seg = segment_path(&dir, 0);
    let mut bytes = fs::read(&seg).expect("read");
    bytes[HEADER + 10] ^= 0xff;
    fs::write(&seg, bytes).expect("write");
    let q = DiskQueue::open(&dir, 64 << 20).expect("reopen");
    let got = drain(&q);
    assert_eq!(got.last().map(Vec::as_slice), Some(&b"after"[..]));
    let _ = fs::remove_dir_all(&dir);
}

fn tagged(q: &DiskQueue, tenant: &str, body: &[u8]) {
    let t = TenantId::new(tenant).expect("tenant");
    q.append(Kind::TenantTraces, 1, &tag_tenant(&t, body))
        .expect("append");
}

fn bodies(q: &DiskQueue) -> Vec<Vec<u8>> {
    drain(q)
        .into_iter()
        .map(|p| {
            let (_, body) = untag_tenant(&Bytes::from(p)).expect("tagged");
            body.to_vec()
        })
        .collect()
}

fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    fs::read_dir(dir).expect("dir").any(|e| {
        let p = e.expect("entry").path();
        p.is_file()
            && fs::read(&p)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
    })
}

#[test]
fn a_rewrite_removes_one_tenants_records_and_keeps_the_order_of_the_rest() {
    let dir = tmp("rewrite");
    let q = DiskQueue::open(&dir, 1 << 20).expect("open");
    tagged(&q, "acme", b"a1");
    tagged(&q, "gone", b"secret-1");
    tagged(&q, "acme", b"a2");
    // One sent already: the rewrite starts at the head.
    let r = q.peek().expect("peek").expect("record");
    assert_eq!(r.tenant().expect("tenant").as_str(), "acme");
    q.ack(r.next).expect("ack");
    tagged(&q, "gone", b"secret-2");
    tagged(&q, "acme", b"a3");
    let gone = TenantId::new("gone").expect("tenant");
    let dropped = q
        .rewrite(|kind, payload| {
            kind != Kind::TenantTraces || untag_tenant(payload).is_none_or(|(t, _)| t != gone)
        })
        .expect("rewrite");
    assert_eq!(dropped, 2);
    assert!(
        !files_contain(&dir, b"secret"),
        "a deleted record's bytes stayed"
    );
    tagged(&q, "acme", b"a4");
    drop(q);
    let q = DiskQueue::open(&dir, 1 << 20).expect("reopen");
    assert_eq!(
        bodies(&q),
        vec![b"a2".to_vec(), b"a3".to_vec(), b"a4".to_vec()]
    );
    assert_eq!(q.held_bytes(), 0);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_rewrite_interrupted_after_its_commit_is_finished_at_open_and_before_it_undone() {
    for committed in [true, false] {
        let dir = tmp("rewrite-crash");
        {
            let q = DiskQueue::open(&dir, 1 << 20).expect("open");
            tagged(&q, "acme", b"a1");
            tagged(&q, "gone", b"secret");
        }
        // What a crash leaves: a staged segment holding the kept record,
        // with or without the commit marker.
        let staging = dir.join("rewrite.d");
        fs::create_dir_all(&staging).expect("staging");
        let t = TenantId::new("acme").expect("tenant");
        let body = tag_tenant(&t, b"a1");
        let len = u32::try_from(body.len()).expect("len");
        let mut seg = encode_header(Kind::TenantTraces, 1, &[&body], len).to_vec();
        seg.extend_from_slice(&body);
        fs::write(segment_path(&staging, 1), seg).expect("stage");
        if committed {
            fs::write(dir.join("rewrite"), "1").expect("marker");
        }
        let q = DiskQueue::open(&dir, 1 << 20).expect("reopen");
        let expected: Vec<Vec<u8>> = if committed {
            vec![b"a1".to_vec()]
        } else {
            vec![b"a1".to_vec(), b"secret".to_vec()]
        };
        assert_eq!(bodies(&q), expected, "committed: {committed}");
        assert!(!staging.exists());
        let _ = fs::remove_dir_all(&dir);
    }
}

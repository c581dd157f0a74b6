//! What must hold for any bytes a client sends, checked by the fuzz
//! targets (`fuzz/`) and by replaying their corpora in the tests. Each
//! function panics when the property fails.

use bytes::Bytes;

use super::body::{Encoding, decompress, drop_invalid_spans, json_to_protobuf};
use super::wire::scan_request;

/// Any bytes as an `ExportTraceServiceRequest`: refused, or scanned; and
/// a request with invalid spans filtered to one with none and the same
/// valid spans.
pub fn protobuf_request(data: &[u8]) {
    let Ok(scan) = scan_request(data) else { return };
    if scan.invalid > 0 {
        let kept = drop_invalid_spans(data).expect("a scanned request can be filtered");
        let again = scan_request(&kept).expect("the filtered request scans");
        assert_eq!(again.invalid, 0);
        assert_eq!(again.spans, scan.spans);
    }
}

/// Any bytes as an OTLP/JSON body: refused, or transcoded to protobuf the
/// wire scan reads.
pub fn json_request(data: &[u8]) {
    if let Ok(proto) = json_to_protobuf(data) {
        scan_request(&proto).expect("transcoded JSON is valid protobuf");
    }
}

/// Any bytes as a compressed body (the first byte picks gzip, deflate or
/// zstd): refused, or decompressed to at most `limit` bytes.
pub fn compressed_body(data: &[u8], limit: usize) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let encoding = match which % 3 {
        0 => Encoding::Gzip,
        1 => Encoding::Deflate,
        _ => Encoding::Zstd,
    };
    if let Ok(out) = decompress(Bytes::copy_from_slice(body), encoding, limit) {
        assert!(out.len() <= limit);
    }
}

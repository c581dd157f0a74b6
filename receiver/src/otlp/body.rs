//! Request bodies: decompression under a size limit, and the two OTLP/HTTP
//! encodings turned into one (protobuf bytes).

use std::io::Read;

use bytes::Bytes;
use causeway_model::wire::{LEN, Reader, WireError};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::error::ReceiveError;

/// A `Content-Encoding` the receiver understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No compression.
    Identity,
    /// gzip (RFC 1952), the one every OTLP exporter supports.
    Gzip,
    /// raw deflate in a zlib wrapper (RFC 1950), as HTTP's `deflate` means.
    Deflate,
    /// Zstandard.
    Zstd,
}

impl Encoding {
    /// Parses a `Content-Encoding` header value (absent means identity).
    pub fn parse(header: Option<&str>) -> Result<Self, ReceiveError> {
        match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Self::Identity),
            Some("gzip") | Some("x-gzip") => Ok(Self::Gzip),
            Some("deflate") => Ok(Self::Deflate),
            Some("zstd") => Ok(Self::Zstd),
            Some(other) => Err(ReceiveError::UnsupportedEncoding(other.to_owned())),
        }
    }
}

/// Decompresses `body`, refusing to produce more than `limit` bytes.
///
/// The output grows as the decoder produces it and decoding stops at
/// `limit + 1` bytes, so a small body that would inflate to gigabytes (a
/// "zip bomb") costs at most `limit` bytes of memory before it is refused.
pub fn decompress(body: Bytes, encoding: Encoding, limit: usize) -> Result<Bytes, ReceiveError> {
    let mut out = Vec::new();
    let cap = limit as u64 + 1;
    let read = match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                return Err(ReceiveError::TooLarge { limit });
            }
            return Ok(body);
        }
        Encoding::Gzip => {
            // MultiGzDecoder: concatenated gzip members are one valid stream.
            flate2::read::MultiGzDecoder::new(&body[..])
                .take(cap)
                .read_to_end(&mut out)
        }
        Encoding::Deflate => flate2::read::ZlibDecoder::new(&body[..])
            .take(cap)
            .read_to_end(&mut out),
        Encoding::Zstd => zstd::stream::read::Decoder::with_buffer(&body[..])
            .and_then(|d| d.take(cap).read_to_end(&mut out)),
    };
    read.map_err(|e| ReceiveError::Decompress {
        encoding,
        reason: e.to_string(),
    })?;
    if out.len() > limit {
        return Err(ReceiveError::TooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// Parses an OTLP/JSON body and re-encodes it as protobuf, so that every
/// later stage reads one format.
pub fn json_to_protobuf(body: &[u8]) -> Result<Bytes, ReceiveError> {
    // serde would also read a struct from a JSON array; OTLP/JSON is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ReceiveError::Decode(
            "invalid OTLP/JSON: the body must be a JSON object".into(),
        ));
    }
    let request: ExportTraceServiceRequest = serde_json::from_slice(body)
        .map_err(|e| ReceiveError::Decode(format!("invalid OTLP/JSON: {e}")))?;
    Ok(Bytes::from(request.encode_to_vec()))
}

/// Drops the spans with invalid ids from a request (the rare path), and
/// scope and resource spans left without spans; everything else is copied
/// byte for byte. On the wire, not through prost: the request is kept
/// exactly as the scan accepted it (strings that are not UTF-8 included,
/// read lossily later), so whether a request is accepted never depends
/// on whether one of its spans has a bad id.
pub fn drop_invalid_spans(payload: &[u8]) -> Result<Bytes, ReceiveError> {
    let mut out = Vec::with_capacity(payload.len());
    filter(payload, &mut out, Level::Request)
        .map_err(|e| ReceiveError::Decode(format!("invalid protobuf: {e}")))?;
    Ok(Bytes::from(out))
}

/// Where in the request a message sits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `ExportTraceServiceRequest`: field 1 holds `ResourceSpans`.
    Request,
    /// `ResourceSpans`: field 2 holds `ScopeSpans`.
    Resource,
    /// `ScopeSpans`: field 2 holds `Span`s.
    Scope,
}

/// Copies `buf` (a message at `level`) to `out` without its invalid spans;
/// returns whether any span was kept.
fn filter(buf: &[u8], out: &mut Vec<u8>, level: Level) -> Result<bool, WireError> {
    let (child, field_no) = match level {
        Level::Request => (Some(Level::Resource), 1u32),
        Level::Resource => (Some(Level::Scope), 2),
        Level::Scope => (None, 2),
    };
    let mut kept_any = false;
    let mut r = Reader::new(buf);
    while !r.done() {
        let start = r.position();
        let (field, wire) = r.key()?;
        if field != u64::from(field_no) || wire != LEN {
            r.skip(wire)?;
            out.extend_from_slice(&buf[start..r.position()]);
            continue;
        }
        let inner = r.bytes("message")?;
        match child {
            Some(level) => {
                let mut kept = Vec::with_capacity(inner.len());
                if filter(inner, &mut kept, level)? {
                    encode_key(field_no, WireType::LengthDelimited, out);
                    encode_varint(kept.len() as u64, out);
                    out.extend_from_slice(&kept);
                    kept_any = true;
                }
            }
            None => {
                if span_is_valid(inner)? {
                    out.extend_from_slice(&buf[start..r.position()]);
                    kept_any = true;
                }
            }
        }
    }
    Ok(kept_any)
}

fn span_is_valid(span: &[u8]) -> Result<bool, WireError> {
    let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let mut r = Reader::new(span);
    while !r.done() {
        match r.key()? {
            (1, LEN) => trace_id = r.bytes("trace_id")?,
            (2, LEN) => span_id = r.bytes("span_id")?,
            (4, LEN) => parent = r.bytes("parent_span_id")?,
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(super::wire::id_problem(trace_id, span_id, parent).is_none())
}

//! Request bodies: decompression under a size limit, and the two OTLP/HTTP
//! encodings turned into one (protobuf bytes).

use std::io::Read;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

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

/// Drops the spans with invalid ids from a request (the rare path), returning
/// the re-encoded request.
pub fn drop_invalid_spans(payload: &[u8]) -> Result<Bytes, ReceiveError> {
    let mut request = ExportTraceServiceRequest::decode(payload)
        .map_err(|e| ReceiveError::Decode(format!("invalid protobuf: {e}")))?;
    for rs in &mut request.resource_spans {
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|s| {
                super::wire::id_problem(&s.trace_id, &s.span_id, &s.parent_span_id).is_none()
            });
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    request
        .resource_spans
        .retain(|rs| !rs.scope_spans.is_empty());
    Ok(Bytes::from(request.encode_to_vec()))
}

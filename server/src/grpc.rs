//! gRPC plumbing shared by the receiver (requests validated by the wire
//! scan, not decoded) and the forwarder (replies it only needs to succeed).

use bytes::{Buf, Bytes};
use tonic::Status;
use tonic::codec::{DecodeBuf, Decoder};

/// Takes a gRPC message as its bytes, zero-copy: for OTLP requests
/// validated by the wire scan instead of a prost decode, and for clients
/// that only need to know a call succeeded.
#[derive(Debug)]
pub struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}

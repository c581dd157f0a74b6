//! A protobuf wire-format reader over borrowed bytes.
//!
//! The receiver validates OTLP requests with it and the processor converts
//! them to Arrow with it, both without building prost structs: every value
//! read is a slice of the request buffer or a scalar.

/// Longest string kept from a request (service, span and event names,
/// attribute values, status and exception messages), bytes; longer ones
/// are cut at a character boundary, as the OpenTelemetry attribute-value
/// length limit truncates. Names become series keys, catalog entries and
/// dictionary values, so one client's megabyte-long route would otherwise
/// cost a megabyte per series (10,000 series per tenant). 4 KiB is over
/// any name the semantic conventions describe and near what other
/// backends keep (Datadog cuts tag values and resource names at 5,000
/// characters).
pub const MAX_VALUE_BYTES: usize = 4096;

/// `raw` cut to [`MAX_VALUE_BYTES`] at a UTF-8 character boundary, and
/// whether it was cut.
#[inline]
pub fn cap_value(raw: &[u8]) -> (&[u8], bool) {
    if raw.len() <= MAX_VALUE_BYTES {
        return (raw, false);
    }
    let mut end = MAX_VALUE_BYTES;
    // Back off continuation bytes (10xxxxxx) to the start of a character.
    while end > 0 && raw[end] & 0b1100_0000 == 0b1000_0000 {
        end -= 1;
    }
    (&raw[..end], true)
}

/// Why a request is not a well-formed `ExportTraceServiceRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer ends inside a field.
    #[error("truncated message: {0} runs past the end of its enclosing message")]
    Truncated(&'static str),
    /// A varint longer than 10 bytes.
    #[error("invalid varint")]
    BadVarint,
    /// Field number 0 or wire type 6/7, or a group.
    #[error("invalid tag: field {field}, wire type {wire}")]
    BadTag {
        /// The field number.
        field: u64,
        /// The wire type.
        wire: u8,
    },
    /// A known field with the wrong wire type.
    #[error("invalid wire type {wire} for {message}.{field}")]
    WrongWireType {
        /// Message name.
        message: &'static str,
        /// Field name.
        field: &'static str,
        /// Wire type seen.
        wire: u8,
    },
    /// `AnyValue`s nested deeper than [`MAX_DEPTH`].
    #[error("attribute values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// How deep `AnyValue` arrays and key-value lists may nest (prost's limit is 100).
pub const MAX_DEPTH: u32 = 64;

/// Wire type of varints.
pub const VARINT: u8 = 0;
/// Wire type of 64-bit fixed values.
pub const I64: u8 = 1;
/// Wire type of length-delimited values.
pub const LEN: u8 = 2;
/// Wire type of 32-bit fixed values.
pub const I32: u8 = 5;

/// Reads fields from a protobuf message.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    #[inline]
    /// Bytes read so far: with the buffer, the raw bytes of a field.
    pub fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    /// True at the end of the message.
    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    /// Reads a varint.
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(WireError::Truncated("varint"))?;
        self.pos += 1;
        if b < 0x80 {
            return Ok(u64::from(b));
        }
        let mut value = u64::from(b & 0x7f);
        let mut shift = 7;
        loop {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(WireError::Truncated("varint"))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(WireError::BadVarint);
            }
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return Err(WireError::BadVarint);
            }
        }
    }

    /// Reads a tag; returns (field number, wire type).
    #[inline]
    pub fn key(&mut self) -> Result<(u64, u8), WireError> {
        let key = self.varint()?;
        let wire = (key & 7) as u8;
        let field = key >> 3;
        if field == 0
            || field > u64::from(u32::MAX >> 3)
            || !matches!(wire, VARINT | I64 | LEN | I32)
        {
            return Err(WireError::BadTag { field, wire });
        }
        Ok((field, wire))
    }

    #[inline]
    /// Reads a length-delimited value.
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::Truncated(what))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    #[inline]
    /// Reads a fixed 64-bit value.
    pub fn fixed64(&mut self) -> Result<u64, WireError> {
        let end = self.pos + 8;
        let raw = self
            .buf
            .get(self.pos..end)
            .ok_or(WireError::Truncated("fixed64"))?;
        self.pos = end;
        let mut le = [0u8; 8];
        le.copy_from_slice(raw);
        Ok(u64::from_le_bytes(le))
    }

    #[inline]
    /// Skips a value of wire type `wire`.
    pub fn skip(&mut self, wire: u8) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.fixed64().map(drop),
            LEN => self.bytes("length-delimited field").map(drop),
            _ => {
                let end = self.pos + 4;
                if end > self.buf.len() {
                    return Err(WireError::Truncated("fixed32"));
                }
                self.pos = end;
                Ok(())
            }
        }
    }
}

/// Checks a field's wire type.
#[inline]
pub fn expect(
    wire: u8,
    want: u8,
    message: &'static str,
    field: &'static str,
) -> Result<(), WireError> {
    if wire == want {
        Ok(())
    } else {
        Err(WireError::WrongWireType {
            message,
            field,
            wire,
        })
    }
}

/// Checks ids as the OTLP specification defines them: a trace id is 16 bytes,
/// a span id 8, neither all zeroes; a parent span id is empty or 8 bytes.
pub fn id_problem(trace_id: &[u8], span_id: &[u8], parent: &[u8]) -> Option<&'static str> {
    if trace_id.len() != 16 {
        return Some("trace_id must be 16 bytes");
    }
    if trace_id.iter().all(|&b| b == 0) {
        return Some("trace_id is all zeroes");
    }
    if span_id.len() != 8 {
        return Some("span_id must be 8 bytes");
    }
    if span_id.iter().all(|&b| b == 0) {
        return Some("span_id is all zeroes");
    }
    if !parent.is_empty() && parent.len() != 8 {
        return Some("parent_span_id must be empty or 8 bytes");
    }
    None
}

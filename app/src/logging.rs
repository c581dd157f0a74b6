//! Log output with secrets and personal data redacted.
//!
//! Every log line passes [`causeway_model::redact`] on its way to stderr,
//! so an e-mail address or a token that reaches a log field (an error
//! message quoting a request, a connector's answer) is not written out.
//! The formatter writes one event per writer; the writer buffers it and
//! writes the redacted line when the event is done.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// A [`MakeWriter`] for stderr that redacts each event.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Redacting<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting::new(io::stderr())
    }
}

/// Buffers one event and writes it redacted when flushed or dropped.
#[derive(Debug)]
pub struct Redacting<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Redacting<W> {
    /// A writer over `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(256),
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let clean = causeway_model::redact::redact(&text);
        let result = self.inner.write_all(clean.as_bytes());
        self.buf.clear();
        result
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.emit()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        // Nothing to report an error to: logging must not fail the caller.
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_written_redacted_when_the_event_ends() {
        let mut out = Vec::new();
        {
            let mut w = Redacting::new(&mut out);
            write!(w, "sync failed for ops@example.com with ").expect("write");
            writeln!(w, "Authorization: Bearer s3cr3t-t0ken").expect("write");
        }
        let line = String::from_utf8(out).expect("utf8");
        assert_eq!(
            line,
            "sync failed for <email> with Authorization: <redacted>\n"
        );
    }
}

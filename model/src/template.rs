//! Event templates: a span event (a log line recorded on the span, or an
//! exception) reduced to its constant part, so that "the same line of code
//! logged again" counts as one pattern whatever ids and numbers it printed.
//!
//! Masking is the classic first step of log-template miners (Drain, Spell):
//! numbers, hexadecimal ids and UUIDs become placeholders. It is cheap (one
//! pass, no regex) and needs no training, which matters because templates
//! are computed for every event on the ingest path.

/// A template is cut to this many bytes: the constant part of a log line
/// is at its start, and the tail of long lines is usually a dumped object.
pub const TEMPLATE_BYTES: usize = 120;
/// At most this many events of one span are kept (a span that logs in a
/// loop would otherwise dominate its service's patterns).
pub const EVENTS_PER_SPAN: usize = 32;
/// Templates of one span are joined with this byte in the span store.
pub const SEPARATOR: char = '\n';

/// The template of one event: `severity location message`, each part
/// present only when known, masked and cut to [`TEMPLATE_BYTES`].
///
/// - `severity`: `log.severity`/`level` (upper-cased);
/// - `location`: `code.namespace#code.lineno` or `code.function`; this
///   tells two lines with the same words apart, as a logger name does;
/// - `message`: the log message, or the event name when there is none.
pub fn event_template(severity: Option<&str>, location: Option<&str>, message: &str) -> String {
    let mut out = String::with_capacity(TEMPLATE_BYTES.min(message.len() + 24));
    push_event_template(&mut out, severity, location, &[message]);
    out
}

/// [`event_template`] appended to `out` (the ingest path writes every
/// span's templates into one buffer); the message may come in parts
/// (`["exception ", type]`), masked as if joined.
pub fn push_event_template(
    out: &mut String,
    severity: Option<&str>,
    location: Option<&str>,
    message: &[&str],
) {
    let start = out.len();
    if let Some(s) = severity.map(str::trim).filter(|s| !s.is_empty()) {
        out.extend(s.chars().take(8).map(|c| c.to_ascii_uppercase()));
        out.push(' ');
    }
    if let Some(l) = location.map(str::trim).filter(|l| !l.is_empty()) {
        push_masked(out, start, l, false);
        out.push(' ');
    }
    for part in message {
        push_masked(out, start, part, true);
    }
    while out.len() > start && out.ends_with(' ') {
        out.pop();
    }
}

/// Appends `text` masked: runs of digits become `<n>`, hexadecimal tokens
/// with a digit and at least 8 characters (ids, hashes, UUID parts) become
/// `<id>`, whitespace (including newlines) collapses to one space. In a
/// location (`keep_line`) digits are kept, since `Foo#457` is the place.
/// The template began at `start` in `out`; it is cut to [`TEMPLATE_BYTES`].
fn push_masked(out: &mut String, start: usize, text: &str, mask_numbers: bool) {
    let limit = start + TEMPLATE_BYTES;
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut last_space = out.len() == start || out.ends_with(' ');
    while i < bytes.len() && out.len() < limit {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
            i += 1;
            continue;
        }
        last_space = false;
        if mask_numbers && c.is_ascii_alphanumeric() {
            // The whole alphanumeric token (with '-' inside UUIDs).
            let start = i;
            let mut end = i;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'-') {
                end += 1;
            }
            let token = &text[start..end];
            if is_id(token) {
                out.push_str("<id>");
                i = end;
                continue;
            }
            // Not an id: copy letters, mask digit runs.
            let mut j = start;
            while j < end {
                if bytes[j].is_ascii_digit() {
                    while j < end && bytes[j].is_ascii_digit() {
                        j += 1;
                    }
                    out.push_str("<n>");
                } else {
                    out.push(bytes[j] as char);
                    j += 1;
                }
            }
            i = end;
            continue;
        }
        // Copy one UTF-8 character.
        let len = utf8_len(c);
        let end = (i + len).min(bytes.len());
        if let Some(s) = text.get(i..end) {
            out.push_str(s);
        }
        i = end;
    }
    // Never cut inside a character: push_str keeps whole characters, and
    // the loop stops at the first character past the limit.
    if out.len() > limit {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// A hexadecimal token of 8+ characters with at least one digit (a trace
/// id, a hash, a UUID with its dashes), or a word with dashes whose parts
/// are all such.
fn is_id(token: &str) -> bool {
    let hex: usize = token.bytes().filter(u8::is_ascii_hexdigit).count();
    let digits = token.bytes().any(|b| b.is_ascii_digit());
    let dashes = token.bytes().filter(|&b| b == b'-').count();
    digits && hex + dashes == token.len() && hex >= 8
}

/// Splits a span's stored templates.
pub fn split(joined: &str) -> impl Iterator<Item = &str> {
    joined.split(SEPARATOR).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ids_are_masked() {
        let a = event_template(
            Some("info"),
            Some("t.s.TravelServiceImpl#457"),
            "[getTickets][Calculate distance][calculate time：1200  trip 5f1e2d3c-aaaa-4bbb-8ccc-0123456789ab]",
        );
        assert_eq!(
            a,
            "INFO t.s.TravelServiceImpl#457 [getTickets][Calculate distance][calculate time：<n> trip <id>]"
        );
        let b = event_template(
            Some("INFO"),
            Some("t.s.TravelServiceImpl#457"),
            "[getTickets][Calculate distance][calculate time：7  trip 00000000-1111-2222-3333-444444444444]",
        );
        assert_eq!(a, b, "the same line with other values is one template");
        assert_eq!(
            event_template(None, None, "order ffc8ca7e4c8f06c7 failed 3 times"),
            "order <id> failed <n> times"
        );
        // Words that look like hex but have no digit stay.
        assert_eq!(
            event_template(None, None, "deadbeefcafe added"),
            "deadbeefcafe added"
        );
    }

    #[test]
    fn long_and_multiline_messages_are_cut_on_a_char_boundary() {
        let msg = format!("{}\n\tat com.Foo.bar(Foo.java:12)", "é".repeat(200));
        let t = event_template(Some("ERROR"), None, &msg);
        assert!(t.len() <= TEMPLATE_BYTES);
        assert!(t.starts_with("ERROR é"));
        assert!(
            !t.contains('\n'),
            "the separator never occurs inside a template"
        );
    }

    #[test]
    fn appending_into_a_shared_buffer_is_the_same_template_per_event() {
        let long = "x".repeat(300);
        let mut buf = String::new();
        push_event_template(&mut buf, Some("info"), Some("A#1"), &["  started 42 "]);
        buf.push(SEPARATOR);
        push_event_template(&mut buf, None, None, &["exception ", "java.io.IOException"]);
        buf.push(SEPARATOR);
        push_event_template(&mut buf, Some("WARN"), None, &[&long]);
        let parts: Vec<&str> = split(&buf).collect();
        assert_eq!(
            parts,
            vec![
                event_template(Some("info"), Some("A#1"), "  started 42 ").as_str(),
                event_template(None, None, "exception java.io.IOException").as_str(),
                event_template(Some("WARN"), None, &long).as_str(),
            ]
        );
        assert_eq!(
            parts[2].len(),
            TEMPLATE_BYTES,
            "each template is cut on its own"
        );
    }

    #[test]
    fn split_skips_empty_parts() {
        let joined = ["a", "b <n>"].join("\n");
        assert_eq!(split(&joined).collect::<Vec<_>>(), vec!["a", "b <n>"]);
        assert_eq!(split("").count(), 0);
    }
}

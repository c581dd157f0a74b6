//! The application lines inside the log CSV: level, message and, for
//! ERROR lines, the Java exception they report.
//!
//! Train Ticket logs with logback:
//! `16:42:22.382 ERROR  t.s.TravelServiceImpl#532 TraceID: <id> SpanID: <id> [message]`,
//! the level padded to five characters or more, and a stack trace, when
//! there is one, on the following lines.

/// Stack trace lines kept in `exception.stacktrace`.
const STACK_LINES: usize = 20;
/// `exception.message` is cut to this many characters: the messages of
/// Spring's HTTP errors embed whole response bodies.
const EXCEPTION_MESSAGE_CHARS: usize = 1024;

const LEVELS: [&str; 7] = [
    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL",
];

/// One application log line (possibly several physical lines).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LogLine<'a> {
    pub(super) level: &'static str,
    /// The token after the level when it is not the trace context: the
    /// logger, with logback's `#line` (`t.s.TravelServiceImpl#532`).
    pub(super) logger: Option<&'a str>,
    /// The first line's text after the logger and the trace context.
    pub(super) message: &'a str,
    text: &'a str,
}

/// What an ERROR line says about the exception behind it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ExceptionInfo {
    /// The Java class, when the line names one.
    pub(super) ty: Option<String>,
    pub(super) message: String,
    pub(super) stacktrace: Option<String>,
}

/// Splits a log line into level and message; `None` when no level token
/// is found among its first three tokens (the time, optionally preceded by
/// a date, comes first).
pub(super) fn parse(text: &str) -> Option<LogLine<'_>> {
    let first = text.lines().next().unwrap_or_default();
    let mut tokens = Tokens::new(first);
    let (level_end, level) = tokens.by_ref().take(3).find_map(|(start, token)| {
        // Tolerates `[ERROR]` and `ERROR:` besides the padded `ERROR `.
        let bare = token.trim_matches(|c| c == '[' || c == ']' || c == ':');
        LEVELS
            .iter()
            .find(|l| **l == bare)
            .map(|l| (start + token.len(), *l))
    })?;
    let logger = Tokens::new(&first[level_end..])
        .next()
        .map(|(_, t)| t)
        .filter(|t| *t != "TraceID:" && !t.starts_with('['));
    let message = match first.find("SpanID: ") {
        // The span id, then the message.
        Some(at) => skip_token(&first[at + "SpanID: ".len()..]),
        // No trace context: the logger, then the message.
        None => skip_token(&first[level_end..]),
    };
    let message = match message.trim() {
        "" => first.trim(),
        m => m,
    };
    Some(LogLine {
        level,
        logger,
        message,
        text,
    })
}

impl LogLine<'_> {
    /// The exception reported by the line: the first stack trace line that
    /// looks like `java.lang.Foo: message`, else the class after "nested
    /// exception is" (Spring's wrapper messages), else only the message.
    pub(super) fn exception(&self) -> ExceptionInfo {
        let mut rest = self.text.lines().skip(1).map(str::trim_end);
        let (ty, message) = match rest.find_map(exception_line) {
            Some((ty, message)) => (Some(ty), message),
            None => match nested_exception(self.text) {
                Some((ty, message)) => (Some(ty), message),
                None => (None, None),
            },
        };
        let message = message.map(str::trim).filter(|m| !m.is_empty());
        let stack: Vec<&str> = self
            .text
            .lines()
            .skip(1)
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .take(STACK_LINES)
            .collect();
        ExceptionInfo {
            ty: ty.map(str::to_owned),
            message: truncate_chars(message.unwrap_or(self.message), EXCEPTION_MESSAGE_CHARS)
                .to_owned(),
            stacktrace: (!stack.is_empty()).then(|| stack.join("\n")),
        }
    }
}

/// `^[A-Za-z_$][\w$.]*(Exception|Error)(: .*)?$`: the class and the message.
fn exception_line(line: &str) -> Option<(&str, Option<&str>)> {
    let (class, message) = match line.split_once(": ") {
        Some((class, message)) => (class, Some(message)),
        None => (line, None),
    };
    is_exception_class(class).then_some((class, message))
}

fn is_exception_class(s: &str) -> bool {
    let mut chars = s.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$');
    let suffix = ["Exception", "Error"]
        .iter()
        .any(|end| s.len() > end.len() && s.ends_with(end));
    starts_well && suffix && chars.all(is_class_char)
}

fn is_class_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '.'
}

/// `... nested exception is java.lang.IllegalStateException: No instances
/// available for ts-food-service] with root cause`: the class and the
/// message up to the bracket that closes the wrapper's `[`.
fn nested_exception(text: &str) -> Option<(&str, Option<&str>)> {
    const MARK: &str = "nested exception is ";
    let after = &text[text.find(MARK)? + MARK.len()..];
    let end = after.find(|c| !is_class_char(c)).unwrap_or(after.len());
    let class = &after[..end];
    if !class
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
    {
        return None;
    }
    let message = after[end..].strip_prefix(": ").map(|m| {
        let m = m.lines().next().unwrap_or_default();
        let mut depth = 0usize;
        let close = m.char_indices().find_map(|(i, c)| match c {
            '[' => {
                depth += 1;
                None
            }
            ']' if depth == 0 => Some(i),
            ']' => {
                depth -= 1;
                None
            }
            _ => None,
        });
        &m[..close.unwrap_or(m.len())]
    });
    Some((class, message))
}

/// At most `n` characters of `s`.
pub(super) fn truncate_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `s` without its first whitespace-separated token.
fn skip_token(s: &str) -> &str {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    &s[end..]
}

/// Whitespace-separated tokens with their byte offsets.
struct Tokens<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Self {
        Tokens { s, at: 0 }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.s[self.at..];
        let start = self.at + rest.find(|c: char| !c.is_whitespace())?;
        let rest = &self.s[start..];
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        self.at = start + len;
        Some((start, &self.s[start..start + len]))
    }
}

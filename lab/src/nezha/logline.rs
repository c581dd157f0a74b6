//! The application lines inside the log CSV: level, message and, for
//! ERROR lines, the Java exception they report.
//!
//! Applications log in many layouts, and the data set's other applications
//! are written in other languages, so the level is read from what the line
//! is, not from one application's habit:
//!
//! - text with the level among its first tokens: logback's
//!   `16:42:22.382 ERROR  t.s.TravelServiceImpl#532 TraceID: <id> SpanID: <id> [message]`
//!   (the level padded to five characters or more, a stack trace, when
//!   there is one, on the following lines), `[ERROR]`, Python's
//!   `ERROR:root:message`, logfmt's `level=error`, and .NET's console
//!   `fail: Logger[0]`;
//! - a JSON object (Go's logrus and zap, Node's pino and bunyan, Python's
//!   JSON formatters, log4j2's JSON layout, Serilog's compact JSON): the
//!   level from `severity`, `level`, `levelname`, `log.level`, `lvl` or
//!   `@l` (pino's numbers too), the message from `message`, `msg` or
//!   `@m`, the logger and a stack trace when the record has them
//!   ([`normalize_json`]).

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
/// a date, comes first). A JSON record is first put in that layout by
/// [`normalize_json`].
pub(super) fn parse(text: &str) -> Option<LogLine<'_>> {
    let first = text.lines().next().unwrap_or_default();
    let mut tokens = Tokens::new(first);
    let (level_end, level) = tokens
        .by_ref()
        .take(3)
        .find_map(|(start, token)| level_of(token).map(|l| (start + token.len(), l)))?;
    let logger = Tokens::new(&first[level_end..])
        .next()
        .map(|(_, t)| t)
        .filter(|t| *t != "TraceID:" && *t != NO_LOGGER && !t.starts_with('['));
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

/// The level a token names, in its usual spellings: `ERROR`, `[ERROR]`,
/// `ERROR:`, Python's `ERROR:root:…`, logfmt's `level=error`, .NET's
/// `fail:`. Bare words are taken upper-case only: a message's first word
/// "error" is not a level.
fn level_of(token: &str) -> Option<&'static str> {
    let bare = token.trim_matches(|c| c == '[' || c == ']' || c == ':');
    let upper = |word: &str| LEVELS.iter().find(|l| **l == word).copied();
    if let Some((key, value)) = bare.split_once('=') {
        return matches!(key, "level" | "severity" | "lvl")
            .then(|| named_level(value.trim_matches('"')))
            .flatten();
    }
    // .NET's console logger: `fail:` `crit:` `warn:` `info:` `dbug:` `trce:`.
    if token.ends_with(':') {
        let dotnet = match bare {
            "fail" => Some("ERROR"),
            "crit" => Some("FATAL"),
            "warn" => Some("WARN"),
            "info" => Some("INFO"),
            "dbug" => Some("DEBUG"),
            "trce" => Some("TRACE"),
            _ => None,
        };
        if dotnet.is_some() {
            return dotnet;
        }
    }
    upper(bare).or_else(|| upper(bare.split(':').next().unwrap_or_default()))
}

/// A level named in any case, with the aliases logging libraries use.
fn named_level(name: &str) -> Option<&'static str> {
    let upper = name.trim().to_ascii_uppercase();
    match upper.as_str() {
        "ERR" | "FAIL" | "SEVERE" => Some("ERROR"),
        "CRIT" | "CRITICAL" | "PANIC" | "ALERT" | "EMERG" | "EMERGENCY" | "DPANIC" => Some("FATAL"),
        "WARNING" => Some("WARNING"),
        "INFORMATION" | "NOTICE" => Some("INFO"),
        "VERBOSE" | "FINE" | "FINER" | "FINEST" => Some("DEBUG"),
        other => LEVELS.iter().find(|l| **l == other).copied(),
    }
}

/// A pino/bunyan numeric level.
fn numeric_level(n: f64) -> Option<&'static str> {
    Some(match n as i64 {
        ..=10 => "TRACE",
        11..=20 => "DEBUG",
        21..=30 => "INFO",
        31..=40 => "WARN",
        41..=50 => "ERROR",
        _ => "FATAL",
    })
}

/// Written where a normalized record has no logger, so that the message's
/// first word is not taken for one.
const NO_LOGGER: &str = "-";

/// A structured (JSON object) log record as a text line
/// `LEVEL logger message`, with its stack trace, when it has one, on the
/// following lines; `None` when `text` is not a JSON object or names no
/// level.
pub(super) fn normalize_json(text: &str) -> Option<String> {
    use serde_json::Value;
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    let record: serde_json::Map<String, Value> = serde_json::from_str(trimmed).ok()?;
    let get = |keys: &[&str]| keys.iter().find_map(|k| record.get(*k));
    let level = match get(&["severity", "level", "levelname", "log.level", "lvl", "@l"])? {
        Value::String(s) => named_level(s)?,
        Value::Number(n) => numeric_level(n.as_f64()?)?,
        _ => return None,
    };
    let text_of = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let message = get(&["message", "msg", "@m", "MessageTemplate", "@mt"])
        .and_then(text_of)
        .unwrap_or_default();
    let logger = get(&["logger", "logger_name", "loggerName", "name", "logName"])
        .and_then(text_of)
        .filter(|l| !l.is_empty() && !l.contains(char::is_whitespace))
        .unwrap_or_else(|| NO_LOGGER.to_owned());
    // A stack trace: a string field, or pino's `err.stack`.
    let stack = get(&[
        "stack_trace",
        "stacktrace",
        "stack",
        "exception",
        "@x",
        "error",
    ])
    .and_then(|v| match v {
        Value::Object(o) => o.get("stack").and_then(text_of),
        other => text_of(other),
    })
    .or_else(|| {
        record
            .get("err")
            .and_then(|e| e.get("stack"))
            .and_then(text_of)
    });
    let first = message.lines().next().unwrap_or_default();
    let mut line = format!("{level} {logger} {first}");
    for extra in message
        .lines()
        .skip(1)
        .chain(stack.iter().flat_map(|s| s.lines()))
    {
        line.push('\n');
        line.push_str(extra);
    }
    Some(line)
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

//! `${env:VAR}` and `${env:VAR:-default}` substitution, as the Collector
//! does it; `$$` is a literal `$`. Comment lines are left alone.

/// A substitution problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EnvError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

pub(super) fn substitute(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<EnvError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        let mut col = 1;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            col += i;
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("$$") {
                out.push('$');
                rest = after;
                col += 2;
                continue;
            }
            let Some(body) = tail.strip_prefix("${") else {
                out.push('$');
                rest = &tail[1..];
                col += 1;
                continue;
            };
            let Some(end) = body.find('}') else {
                errors.push(EnvError {
                    line: n + 1,
                    column: col,
                    message: "unterminated ${...}".into(),
                });
                out.push_str(tail);
                rest = "";
                break;
            };
            let expr = &body[..end];
            let consumed = 2 + end + 1;
            let spec = expr.strip_prefix("env:").unwrap_or(expr);
            let (name, default) = match spec.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (spec, None),
            };
            let valid_name = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid_name {
                errors.push(EnvError {
                    line: n + 1,
                    column: col,
                    message: format!("${{{expr}}} is not a valid ${{env:VAR}} reference"),
                });
            } else {
                match env(name).or_else(|| default.map(str::to_owned)) {
                    Some(v) if v.contains('\n') => errors.push(EnvError {
                        line: n + 1,
                        column: col,
                        message: format!(
                            "environment variable {name} holds a newline, which cannot be substituted into YAML"
                        ),
                    }),
                    Some(v) => out.push_str(&v),
                    None => errors.push(EnvError {
                        line: n + 1,
                        column: col,
                        message: format!(
                            "environment variable {name} is not set (use ${{env:{name}:-default}} for a fallback)"
                        ),
                    }),
                }
            }
            rest = &tail[consumed..];
            col += consumed;
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

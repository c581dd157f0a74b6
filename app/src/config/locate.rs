//! Finds the line of a dotted field path in block-style YAML, so semantic
//! problems (found after parsing, when positions are gone) still point at a
//! line. Flow-style mappings resolve to the line of their nearest block-style
//! ancestor.

use std::collections::HashMap;

/// Field path → 1-based line.
#[derive(Debug, Default)]
pub(super) struct Index {
    lines: HashMap<String, usize>,
}

impl Index {
    /// The line of `path`, or of its longest indexed prefix.
    pub(super) fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(&l) = self.lines.get(p) {
                return Some(l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

pub(super) fn index(text: &str) -> Index {
    let mut idx = Index::default();
    // Open mapping keys and sequence items: (indent, path, is_item).
    let mut stack: Vec<(usize, String, bool)> = Vec::new();
    let mut seq_counts: HashMap<String, usize> = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let mut indent = raw.len() - trimmed.len();
        let mut content = trimmed;
        let item = content
            .strip_prefix("- ")
            .or((content == "-").then_some(""));
        if let Some(item) = item {
            // A sequence may sit at its key's own indentation.
            while let Some((i, _, is_item)) = stack.last() {
                if *i > indent || (*i == indent && *is_item) {
                    stack.pop();
                } else {
                    break;
                }
            }
            let parent = stack.last().map(|(_, p, _)| p.clone()).unwrap_or_default();
            let count = seq_counts.entry(parent.clone()).or_insert(0);
            let path = format!("{parent}[{count}]");
            *count += 1;
            idx.lines.entry(path.clone()).or_insert(n + 1);
            stack.push((indent, path, true));
            indent += 2;
            content = item.trim_start();
            if content.is_empty() {
                continue;
            }
        } else {
            while let Some((i, _, _)) = stack.last() {
                if *i >= indent {
                    stack.pop();
                } else {
                    break;
                }
            }
        }
        let Some((key, _)) = content.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        if key.is_empty() || key.contains([' ', '{', '[']) {
            continue;
        }
        let parent = stack.last().map(|(_, p, _)| p.clone()).unwrap_or_default();
        let path = if parent.is_empty() {
            key.to_owned()
        } else {
            format!("{parent}.{key}")
        };
        idx.lines.entry(path.clone()).or_insert(n + 1);
        stack.push((indent, path, false));
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_sequence_items() {
        let text = "\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
auth:
  api_keys:
    - tenant: a
      key_sha256: x
    - tenant: b
      key_sha256: y
";
        let i = index(text);
        assert_eq!(i.line_of("receivers.otlp.protocols.grpc.endpoint"), Some(5));
        assert_eq!(i.line_of("auth.api_keys[1].key_sha256"), Some(11));
        assert_eq!(i.line_of("auth.api_keys[0]"), Some(8));
        assert_eq!(
            i.line_of("receivers.otlp.protocols.grpc.tls.cert_file"),
            Some(4)
        );
        assert_eq!(i.line_of("nowhere"), None);
    }

    #[test]
    fn sequences_at_their_keys_indentation() {
        let text =
            "auth:\n  api_keys:\n  - tenant: a\n  - tenant: b\n    key_sha256: y\ninsecure: true\n";
        let i = index(text);
        assert_eq!(i.line_of("auth.api_keys[1].key_sha256"), Some(5));
        assert_eq!(i.line_of("insecure"), Some(6));
    }
}

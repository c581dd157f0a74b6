//! What the exporter's sections share.

use causeway_server::Problem;

/// Validates each entry of a list whose entries are named (forwarding
/// endpoints, notification destinations), and that no name is used twice.
pub fn validate_named<T>(
    list: &[T],
    path: &str,
    problems: &mut Vec<Problem>,
    name: impl Fn(&T) -> &str,
    validate: impl Fn(&T, &str, &mut Vec<Problem>),
) {
    let mut seen = std::collections::HashSet::new();
    for (i, entry) in list.iter().enumerate() {
        validate(entry, &format!("{path}[{i}]"), problems);
        let n = name(entry);
        if !seen.insert(n) {
            problems.push(Problem::new(
                format!("{path}[{i}].name"),
                format!("{n:?} is used twice"),
            ));
        }
    }
}

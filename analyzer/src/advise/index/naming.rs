//! What every naming convention is made of: names sanitised to identifiers, and names past
//! an engine's (or an ORM's) limit truncated with a hash of the whole, so that two long
//! names stay distinct. The conventions themselves are the engines' rules
//! ([`EngineRules::index_name`](crate::advise::EngineRules::index_name)) and the ORMs'
//! exporters.

/// `name` when it fits in `max` bytes, else its head, `_`, and 8 hex digits of its hash.
pub fn truncate_with_hash(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = format!("{:08x}", xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32);
    let mut head_len = max.saturating_sub(hash.len() + 1);
    while !name.is_char_boundary(head_len) {
        head_len -= 1;
    }
    let head = name
        .get(..head_len)
        .unwrap_or_default()
        .trim_end_matches('_');
    format!("{head}_{hash}")
}

/// Lowercase ASCII letters, digits and single underscores: `lower("Email")` → `lower_email`.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "expr".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_limit_keep_a_hash_of_the_whole() {
        assert_eq!(truncate_with_hash("short", 10), "short");
        let a = truncate_with_hash("a_very_long_name_with_many_parts_one", 20);
        let b = truncate_with_hash("a_very_long_name_with_many_parts_two", 20);
        assert_eq!(a.len(), 20);
        assert!(a.starts_with("a_very_long"));
        assert_ne!(a, b);
        assert_eq!(
            truncate_with_hash("ééééééé", 10).len(),
            9,
            "cut on a char boundary"
        );
    }

    #[test]
    fn sanitised_names_are_identifiers() {
        assert_eq!(sanitize(r#"lower("Email")"#), "lower_email");
        assert_eq!(sanitize("$**"), "expr");
    }
}

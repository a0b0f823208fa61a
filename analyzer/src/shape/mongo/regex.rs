//! Whether a regular expression can use an index as a bounded range.
//!
//! MongoDB turns a regex into tight index bounds only when it is a "simple" prefix match
//! (`IndexBoundsBuilder::simpleRegex`): anchored with `^` (or `\A`), no case-insensitive or
//! other unusual flag, no alternation, and at least one literal character before anything
//! that is not literal. Those are [`OpClass::Prefix`]; every other regex scans all keys
//! ([`OpClass::Infix`]). Only the class is kept, never the pattern.

use crate::shape::OpClass;

/// The class of a regex match. `flags` are every option string given (the BSON regex's own
/// and a sibling `$options`).
pub(super) fn class(pattern: &str, flags: &[&str]) -> OpClass {
    if is_simple_prefix(pattern, flags) {
        OpClass::Prefix
    } else {
        OpClass::Infix
    }
}

fn is_simple_prefix(pattern: &str, flags: &[&str]) -> bool {
    // `^` under the `m` flag also matches after every newline; `\A` never does.
    let (rest, multiline_ok) = if let Some(rest) = pattern.strip_prefix("\\A") {
        (rest, true)
    } else if let Some(rest) = pattern.strip_prefix('^') {
        (rest, false)
    } else {
        return false;
    };
    if has_unescaped_pipe(rest) {
        return false;
    }
    let mut extended = false;
    for flag in flags.iter().flat_map(|flags| flags.chars()) {
        match flag {
            'm' if multiline_ok => {}
            's' => {}
            'x' => extended = true,
            _ => return false,
        }
    }
    literal_prefix_len(rest, extended) > 0
}

fn has_unescaped_pipe(pattern: &str) -> bool {
    let mut escaped = false;
    for c in pattern.chars() {
        match c {
            '|' if !escaped => return true,
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
    }
    false
}

/// How many characters of index prefix the pattern gives: literal characters up to the first
/// metacharacter, less the last one when a `*`, `?` or `{` quantifier makes it optional.
fn literal_prefix_len(pattern: &str, extended: bool) -> usize {
    let mut len: usize = 0;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' | '{' => return len.saturating_sub(1),
            '\\' => match chars.next() {
                // An escaped punctuation character is itself; `\d`, `\w`, `\Q`... are not.
                Some(escaped) if !escaped.is_ascii_alphanumeric() => len += 1,
                _ => return len,
            },
            '^' | '$' | '.' | '[' | ']' | '(' | ')' | '|' | '+' | '}' => return len,
            '#' if extended => return len,
            c if extended && c.is_whitespace() => {}
            _ => len += 1,
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_literals_are_prefixes() {
        for pattern in [
            "^abc", "^a", "\\Aabc", "^ab.*", "^a+", "^ab*", "^\\.com", "^a b",
        ] {
            assert_eq!(class(pattern, &[""]), OpClass::Prefix, "{pattern}");
        }
    }

    #[test]
    fn everything_else_is_infix() {
        for (pattern, flags) in [
            ("abc", ""),
            ("^abc", "i"),
            ("^", ""),
            ("^.*abc", ""),
            ("^a*", ""),
            ("^a?b", ""),
            ("^(abc)", ""),
            ("^[ab]c", ""),
            ("^a|b", ""),
            ("^\\d+", ""),
            ("^abc", "m"),
            ("^abc", "u"),
            ("^ #x", "x"),
            ("", ""),
        ] {
            assert_eq!(
                class(pattern, &[flags]),
                OpClass::Infix,
                "{pattern} /{flags}"
            );
        }
    }

    #[test]
    fn flags_from_both_places_count() {
        assert_eq!(class("^abc", &["s", "i"]), OpClass::Infix);
        assert_eq!(class("\\Aabc", &["m", "s"]), OpClass::Prefix);
        assert_eq!(class("^a\\|b", &["x"]), OpClass::Prefix);
    }
}

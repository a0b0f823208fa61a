//! Long string literals are cut down before the parse (`literals`); the lowering must not
//! notice. Each text is lowered twice, with the cut and with every literal kept whole, and
//! the two `Lowering`s (shapes, normalized SQL, kept constants, writes, rejections) must be
//! equal.

use proptest::prelude::*;

use crate::command::SqlProtocol;
use crate::shape::Lowering;

use super::super::lower_whole;
use super::{lower, DATABASE};

/// Statements with `?` where the literal goes: comparisons, LIKE patterns, IN lists,
/// writes, casts, function arguments and the literals a shape may keep.
const TEMPLATES: &[&str] = &[
    "SELECT * FROM users WHERE email = ?",
    "SELECT id FROM users WHERE name LIKE ? ORDER BY id LIMIT 10",
    "SELECT id FROM users WHERE name NOT LIKE ? AND org_id = 3",
    "SELECT id FROM users WHERE name ILIKE ?",
    "SELECT id FROM users WHERE name ~~ ?",
    "SELECT id FROM users WHERE status IN (?, 'QUEUED', ?)",
    "SELECT id FROM users WHERE status = ? AND kind IN ('A', 'B')",
    "INSERT INTO users (email, n) VALUES (?, 1), ('x', 2)",
    "UPDATE users SET bio = ? WHERE id = 7",
    "DELETE FROM users WHERE bio = ? AND tenant = 'ACME'",
    "SELECT * FROM events WHERE payload @> ?::jsonb AND kind = 'A'",
    "SELECT * FROM events WHERE payload->>? = 'x'",
    "SELECT date_trunc(?, created_at) FROM events WHERE id = 1",
    "SELECT * FROM events WHERE created_at AT TIME ZONE ? > now()",
    "SELECT length(?)",
    "SELECT * FROM t WHERE a = ? OR b = CAST(? AS text)",
    "COPY (SELECT * FROM t WHERE a = ?) TO STDOUT",
];

/// A literal of each kind PostgreSQL writes strings in, holding `content`.
fn literals(content: &str) -> Vec<String> {
    let quoted = content.replace('\'', "''");
    let plain = content.replace(['\\', '$'], "");
    vec![
        format!("'{quoted}'"),
        format!("E'{}'", quoted.replace('\\', "\\\\")),
        format!("N'{quoted}'"),
        format!("U&'{}'", plain.replace('\'', "''")),
        format!("$${plain}$$"),
        format!("$tag${plain}$tag$"),
        format!("X'{}'", hex(content)),
        format!("B'{}'", bits(content)),
    ]
}

fn hex(content: &str) -> String {
    content.bytes().map(|byte| format!("{byte:02x}")).collect()
}

fn bits(content: &str) -> String {
    content
        .bytes()
        .map(|byte| format!("{:b}", byte & 1))
        .collect()
}

/// Contents past the cut, with the ends a LIKE pattern reads and the forms a keep test
/// looks for (enum-like capitals, JSON-key characters, wide characters).
fn contents() -> Vec<String> {
    let long = "x".repeat(400);
    vec![
        format!("abc%{long}%"),
        format!("%{long}"),
        format!("_{long}_"),
        "A".repeat(300),
        "kind_".repeat(60),
        "é日😀".repeat(40),
        format!("{{\"k\": \"{long}\"}}"),
        format!("it's {long} \\n done"),
    ]
}

fn lowered_both_ways(text: &str) -> (Lowering, Lowering) {
    (
        lower(text),
        lower_whole(DATABASE, text, SqlProtocol::Simple),
    )
}

#[test]
fn long_literals_lower_as_if_whole() {
    let mut lowered = 0;
    for content in contents() {
        for literal in literals(&content) {
            for template in TEMPLATES {
                let text = template.replace('?', &literal);
                let (shrunk, whole) = lowered_both_ways(&text);
                assert_eq!(shrunk, whole, "{template} with {:.40}", literal);
                if shrunk.rejected.is_none() {
                    lowered += 1;
                }
            }
        }
    }
    // Most of them lower into something, so the comparison is not one of rejections.
    assert!(lowered > 8 * 8 * TEMPLATES.len() / 2, "{lowered}");
}

#[test]
fn a_four_mebibyte_literal_lowers_like_a_short_one() {
    let huge = format!("'{}'", "x".repeat(4 << 20));
    for template in ["SELECT * FROM users WHERE email = ?", "SELECT length(?)"] {
        let short = lower(&template.replace('?', "'0123456789'"));
        assert_eq!(lower(&template.replace('?', &huge)), short, "{template}");
    }
    let short = lower("SELECT * FROM users WHERE email = '0123456789'");
    assert_eq!(short.shapes.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_literal_anywhere_lowers_as_if_whole(
        content in "[A-Za-z0-9 _%'\\\\{}\":,.é日-]{200,700}",
        kind in 0usize..8,
        template in 0usize..TEMPLATES.len(),
    ) {
        let literal = &literals(&content)[kind];
        let text = TEMPLATES[template].replace('?', literal);
        let (shrunk, whole) = lowered_both_ways(&text);
        prop_assert_eq!(shrunk, whole);
    }
}

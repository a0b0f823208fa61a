//! The safety net of the masked and quick cache keys: every statement of the other SQL test
//! files (their string literals that read like SQL), and a few edge cases, with their
//! literals changed in several ways, must lower through a cache warmed with the original
//! exactly as they lower fresh. A masking rule that hides a literal the lowering reads, or a
//! quick key that stands for a masked key it should not, fails here.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::command::SqlProtocol;
use crate::shape::sql::SqlCache;

use super::command;
use super::masking::fresh;

/// The other SQL test files (the masking tests' pairs included): their string literals that
/// read like SQL are the corpus.
const SOURCES: &[&str] = &[
    include_str!("table.rs"),
    // The statements the table shares with the end-to-end test.
    include_str!("../../../testing/statements.rs"),
    include_str!("lowering.rs"),
    include_str!("identity.rs"),
    include_str!("privacy.rs"),
    include_str!("statements.rs"),
    include_str!("hostile.rs"),
    include_str!("cache.rs"),
    include_str!("masking.rs"),
];

/// Statements that put literals next to each place the masking must respect, beyond what
/// the shape tests happen to hold.
const EDGES: &[&str] = &[
    "SELECT a FROM t WHERE a IN (SELECT b FROM u ORDER BY b, 1) AND c = 5",
    "SELECT a, b FROM t WHERE a IN (SELECT b, c FROM u ORDER BY 1, 2)",
    "SELECT sum(a) OVER (ORDER BY b ROWS BETWEEN 1 PRECEDING AND 2 FOLLOWING) FROM t ORDER BY 1",
    "SELECT * FROM t WHERE a BETWEEN 1 AND 2 AND b LIKE 'ab%' AND c = 'x y'",
    "SELECT * FROM t WHERE a NOT BETWEEN 'a b' AND 'c d' ORDER BY 2 DESC LIMIT 3",
    "SELECT * FROM t WHERE payload->>'kind' = 'x y' AND payload->'a'->>0 > 5",
    "SELECT * FROM t WHERE payload #>> '{a,b}' = 'x y' ORDER BY payload->>'rank'",
    "SELECT * FROM t WHERE lower(email) = 'a@b.c' AND date_trunc('day', ts) >= '2024-01-01'",
    "SELECT * FROM t WHERE status IN ('QUEUED', 'RUNNING') AND kind = 'BATCH' AND n = 1",
    "SELECT * FROM t WHERE status IN ('QUEUED', 'x y') AND 'DONE' = status",
    "SELECT * FROM t WHERE name ILIKE '%x%' OR name LIKE 'x%' OR name ~~ 'y%'",
    "SELECT * FROM t WHERE a = 1 ORDER BY a = 2, 3 LIMIT 4 OFFSET 5",
    "SELECT a, count(*) FROM t WHERE b > 2 GROUP BY 1 HAVING count(*) > 3 ORDER BY 2",
    "SELECT * FROM t WHERE (ts AT TIME ZONE 'UTC')::date = '2024-01-01' AND a = 5000000000",
    "SELECT jsonb_build_object('k', a) FROM t WHERE a = 'x y' AND b = concat('p', 'q')",
    "SELECT * FROM t WHERE a = ANY('{1,2}') AND b = ARRAY[1, 2] AND c IN (1, (2))",
    "SELECT * FROM t WHERE a IN (1, 2, 3) AND b NOT IN ('x y', 'z') AND c IN ($1, 4)",
    "UPDATE t SET a = 1, b = 'x y' WHERE c = 2 AND d IN (3, 4) RETURNING a",
    "DELETE FROM t WHERE a < 1 AND b = 'x y' AND c BETWEEN 2 AND 3",
    "INSERT INTO t (a, b) VALUES (1, 'x y'), (2, 'z') ON CONFLICT (a) DO UPDATE SET b = 'w'",
    "INSERT INTO t (a) SELECT a FROM u WHERE b = 1 AND c = 'x y' LIMIT 5",
    "SELECT * FROM t WHERE a = :x AND b = 1",
    "SELECT * FROM t WHERE a = -1 AND b = +2 AND c = 1.0 AND d = .5 AND e = 1_000",
    "COPY (SELECT * FROM t WHERE a = 1 AND b = 'x y' ORDER BY 1) TO STDOUT",
    "SELECT * FROM t WHERE a = 1; SELECT * FROM u WHERE b = 'x y' ORDER BY 1",
    "SELECT a FROM t WHERE b IN (1, 2) GROUP BY a IN (3, 4) ORDER BY coalesce(a IN (5), true)",
];

/// The string literals of Rust source text that start like a SQL statement.
fn sql_literals(source: &str) -> Vec<String> {
    const STARTS: &[&str] = &[
        "SELECT", "WITH", "UPDATE", "DELETE", "INSERT", "COPY", "VALUES", "TABLE", "(SELECT",
    ];
    rust_strings(source)
        .into_iter()
        .filter(|text| {
            let head = text.trim_start().to_ascii_uppercase();
            STARTS.iter().any(|start| head.starts_with(start))
        })
        .collect()
}

/// Every `"..."`, `r"..."` and `r#"..."#` literal of Rust source, unescaped; comments and
/// the char literal `'"'` are skipped.
fn rust_strings(source: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(['"', '/', '\'']) {
        let (before, from) = rest.split_at(at);
        if from.starts_with("//") {
            rest = from.find('\n').map_or("", |end| &from[end..]);
        } else if let Some(after) = from.strip_prefix("'\"'") {
            rest = after;
        } else if let Some(body) = from.strip_prefix('"') {
            let unhashed = before.trim_end_matches('#');
            let (text, after) = if unhashed.ends_with('r') {
                let end = format!("\"{}", "#".repeat(before.len() - unhashed.len()));
                match body.split_once(&end) {
                    Some((text, after)) => (text.to_owned(), after),
                    None => (body.to_owned(), ""),
                }
            } else {
                unescape(body)
            };
            strings.push(text);
            rest = after;
        } else {
            rest = from.get(1..).unwrap_or("");
        }
    }
    strings
}

/// A normal string literal's text up to its closing quote, and what follows it.
fn unescape(body: &str) -> (String, &str) {
    let mut text = String::new();
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return (text, &body[at + 1..]),
            '\\' => match chars.next() {
                Some((_, 'n')) => text.push('\n'),
                Some((_, 't')) => text.push('\t'),
                Some((_, 'r')) => text.push('\r'),
                Some((_, '0')) => text.push('\0'),
                Some((_, '\n')) => {
                    // A continuation: the line break and the next line's indent vanish.
                    let remaining = chars.as_str();
                    let skipped = remaining.len() - remaining.trim_start().len();
                    for _ in 0..remaining[..skipped].chars().count() {
                        chars.next();
                    }
                }
                Some((_, other)) => text.push(other),
                None => break,
            },
            other => text.push(other),
        }
    }
    (text, "")
}

/// The byte offset of a tokenizer location (1-based line and character column).
fn offset(text: &str, location: Location) -> Option<usize> {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(usize::try_from(location.line).ok()?.checked_sub(1)?)
        .map(str::len)
        .sum();
    let column = usize::try_from(location.column).ok()?.checked_sub(1)?;
    let line = text.get(line_start..)?;
    Some(
        line_start
            + line
                .char_indices()
                .nth(column)
                .map_or(line.len(), |(at, _)| at),
    )
}

/// A new text for a literal token, or `None` to leave it.
type Rewrite = Box<dyn Fn(&Token) -> Option<String>>;

/// `text` with each plain string and number literal rewritten by `rewrite`.
fn variant(text: &str, rewrite: &dyn Fn(&Token) -> Option<String>) -> Option<String> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text)
        .tokenize_with_location()
        .ok()?;
    let mut out = String::new();
    let mut copied = 0;
    for token in tokens {
        let Some(replacement) = rewrite(&token.token) else {
            continue;
        };
        let start = offset(text, token.span.start)?;
        let end = offset(text, token.span.end)?;
        let written = text.get(start..end)?;
        // Only literals written plainly: `'...'` and digits.
        let plain = match &token.token {
            Token::SingleQuotedString(_) => written.starts_with('\'') && written.ends_with('\''),
            Token::Number(number, _) => written == number,
            _ => false,
        };
        if !plain || start < copied {
            return None;
        }
        out.push_str(text.get(copied..start)?);
        out.push_str(&replacement);
        copied = end;
    }
    out.push_str(text.get(copied..)?);
    Some(out)
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Each lower-case letter one further on (`z` → `a`): the same kind of string.
fn shift_lower(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'z' => 'a',
            'a'..='y' => char::from(c as u8 + 1),
            other => other,
        })
        .collect()
}

/// Every number becomes `number`, every string `string`.
fn constants(number: &'static str, string: &'static str) -> Rewrite {
    Box::new(move |token: &Token| match token {
        Token::Number(..) => Some(number.to_owned()),
        Token::SingleQuotedString(_) => Some(quoted(string)),
        _ => None,
    })
}

/// The ways the corpus's literals are changed. The first two only change values the way
/// traffic does; the others change kinds, so any of them that hits a masked entry must
/// still lower the same.
fn rewrites() -> Vec<(&'static str, Rewrite)> {
    vec![
        (
            "numbers plus one, lower-case letters shifted",
            Box::new(|token: &Token| match token {
                Token::Number(number, false) => Some(
                    number
                        .parse::<u32>()
                        .map_or(number.clone(), |n| n.saturating_add(1).to_string()),
                ),
                Token::SingleQuotedString(text) => Some(quoted(&shift_lower(text))),
                _ => None,
            }),
        ),
        (
            "numbers of one digit more, strings with lower-case letters appended",
            Box::new(|token: &Token| match token {
                Token::Number(number, false) if number.bytes().all(|b| b.is_ascii_digit()) => {
                    Some(format!("{number}7"))
                }
                Token::SingleQuotedString(text) => Some(quoted(&format!("{text}qz"))),
                _ => None,
            }),
        ),
        (
            "every number 2, every string a LIKE prefix",
            constants("2", "ab%"),
        ),
        (
            "every number a bigint, every string a leading wildcard",
            constants("5000000000", "%ab"),
        ),
        (
            "every number a decimal, every string an enum constant",
            constants("1.5", "ZQ_DONE"),
        ),
        (
            "every string upper-cased, every number 1",
            Box::new(|token: &Token| match token {
                Token::Number(..) => Some("1".to_owned()),
                Token::SingleQuotedString(text) => Some(quoted(&text.to_ascii_uppercase())),
                _ => None,
            }),
        ),
        (
            "every string empty",
            Box::new(|token: &Token| match token {
                Token::SingleQuotedString(_) => Some(quoted("")),
                _ => None,
            }),
        ),
    ]
}

#[test]
fn the_corpus_is_the_shape_tests() {
    let corpus: Vec<String> = SOURCES
        .iter()
        .flat_map(|source| sql_literals(source))
        .collect();
    assert!(corpus.len() > 150, "only {} statements found", corpus.len());
    assert!(corpus
        .iter()
        .any(|text| text.starts_with("SELECT \"upstream_reportrun\"")));
    assert!(corpus
        .iter()
        .any(|text| text.contains("LEFT JOIN order_items i")));
}

#[test]
fn a_masked_hit_lowers_exactly_like_a_fresh_lowering() {
    let mut corpus: Vec<String> = SOURCES
        .iter()
        .flat_map(|source| sql_literals(source))
        .collect();
    corpus.extend(EDGES.iter().map(|text| (*text).to_owned()));
    let mut masked_hits = 0;
    let mut quick_hits = 0;
    let mut compared = 0;
    for (name, rewrite) in rewrites() {
        for original in &corpus {
            let Some(changed) = variant(original, rewrite.as_ref()) else {
                continue;
            };
            for protocol in [SqlProtocol::Simple, SqlProtocol::Extended] {
                let cache = SqlCache::new(16);
                let _ = cache.lower(&command(original, protocol));
                let cached = cache.lower(&command(&changed, protocol));
                assert_eq!(
                    cached,
                    fresh(&changed, protocol),
                    "\n{name}\noriginal: {original}\nvariant:  {changed}"
                );
                masked_hits += cache.masked_hits();
                quick_hits += cache.quick_hits();
                compared += 1;
            }
        }
    }
    // Not vacuous: many variants were answered from the masked entry.
    assert!(compared > 1000, "{compared} comparisons");
    assert!(masked_hits > 300, "{masked_hits} masked hits of {compared}");
    // The quick key answered many of them, without the tokenizer.
    assert!(quick_hits > 500, "{quick_hits} quick hits of {compared}");
}

#[test]
fn the_corpus_seeds_the_sql_fuzz_target() {
    let seeds: Vec<Vec<u8>> = SOURCES
        .iter()
        .flat_map(|source| sql_literals(source))
        .chain(EDGES.iter().map(|text| (*text).to_owned()))
        .map(String::into_bytes)
        .collect();
    let files =
        crate::testing::seeds::exercise("sql_lowering", &seeds, crate::fuzzing::sql_lowering);
    assert!(files > 100, "only {files} committed seeds");
}

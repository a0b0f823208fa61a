//! The masked cache key: texts that differ only in values share one lowering, and never a
//! lowering they would not have made themselves.
//!
//! The last test is the safety net: every statement of the other SQL test files, with its
//! literals changed in several ways, must lower through a cache warmed with the original
//! exactly as it lowers fresh.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::command::SqlProtocol;
use crate::shape::sql::{lower_statement, SqlCache};
use crate::shape::Lowering;

use super::{command, DATABASE};

fn fresh(text: &str, protocol: SqlProtocol) -> Lowering {
    lower_statement(DATABASE, text, protocol, None)
}

/// Lower every text through one cache; each must equal its fresh lowering. Returns the
/// cache to inspect its counters.
fn through_cache(texts: &[&str], protocol: SqlProtocol) -> SqlCache {
    let cache = SqlCache::new(64);
    for text in texts {
        let cached = cache.lower(&command(text, protocol));
        assert_eq!(cached, fresh(text, protocol), "\n{text}");
    }
    cache
}

/// The texts lower once, then hit by their masked key.
fn share(texts: &[&str]) {
    let cache = through_cache(texts, SqlProtocol::Simple);
    let hits = texts.len() as u64 - 1;
    assert_eq!(
        (cache.misses(), cache.hits(), cache.masked_hits()),
        (1, hits, hits),
        "{texts:#?}"
    );
    assert_eq!(
        cache.len(),
        1,
        "simple-protocol texts are stored by masked key only"
    );
}

/// Each text lowers on its own, and the lowerings are not all the same.
fn apart(texts: &[&str]) {
    let cache = through_cache(texts, SqlProtocol::Simple);
    assert_eq!(cache.misses(), texts.len() as u64, "{texts:#?}");
    assert_eq!(cache.hits(), 0);
    let first = fresh(texts[0], SqlProtocol::Simple);
    assert!(
        texts[1..]
            .iter()
            .any(|text| fresh(text, SqlProtocol::Simple) != first),
        "the lowerings do not differ, so this pair proves nothing: {texts:#?}"
    );
}

#[test]
fn numbers_in_value_slots_share_an_entry() {
    share(&[
        "SELECT abalance FROM pgbench_accounts WHERE aid = 94845;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 2000000;",
    ]);
    share(&[
        "SELECT * FROM t WHERE a < 1 AND b >= 2 AND c <> 3 AND d != 4 AND e <= 5 AND f > 6",
        "SELECT * FROM t WHERE a < 9 AND b >= 8 AND c <> 7 AND d != 6 AND e <= 5 AND f > 0",
    ]);
    share(&[
        "SELECT * FROM t WHERE a BETWEEN 1 AND 10 AND b = 2 ORDER BY a LIMIT 20 OFFSET 40",
        "SELECT * FROM t WHERE a BETWEEN 5 AND 50 AND b = 3 ORDER BY a LIMIT 10 OFFSET 0",
    ]);
    // Both NUMERIC to PostgreSQL: a decimal and an integer too long for a bigint.
    share(&[
        "SELECT * FROM t WHERE x = 1.5 AND y = 1e3",
        "SELECT * FROM t WHERE x = 99999999999999999999 AND y = 7E10",
    ]);
}

#[test]
fn strings_that_are_not_token_like_share_an_entry() {
    share(&[
        "SELECT * FROM users WHERE email = 'alice@example.com' AND name <> 'alice smith'",
        "SELECT * FROM users WHERE email = 'bob@example.org' AND name <> 'bob jones'",
        "SELECT * FROM users WHERE email = '' AND name <> 'it''s'",
    ]);
    share(&[
        "SELECT * FROM events WHERE at >= '2024-01-01' AND at < '2024-02-01'::date",
        "SELECT * FROM events WHERE at >= '1999-12-31' AND at < '2000-01-01'::date",
    ]);
}

#[test]
fn in_list_items_share_an_entry_when_the_length_is_the_same() {
    share(&[
        "SELECT * FROM t WHERE id IN (1, 2, 3) AND k NOT IN ('a b', 'c-d')",
        "SELECT * FROM t WHERE id IN (7, 8, 9) AND k NOT IN ('x y', 'e-f')",
    ]);
    // The length stays in the key (the shapes ignore it; a key does not).
    apart_keys(&[
        "SELECT * FROM t WHERE id IN (1, 2)",
        "SELECT * FROM t WHERE id IN (1, 2, 3)",
    ]);
}

/// Each text is a miss, whatever the lowerings are.
fn apart_keys(texts: &[&str]) {
    let cache = through_cache(texts, SqlProtocol::Simple);
    assert_eq!(cache.misses(), texts.len() as u64, "{texts:#?}");
}

#[test]
fn literals_the_lowering_reads_keep_entries_apart() {
    // Enum constants become partial-index terms.
    apart(&[
        "SELECT * FROM jobs WHERE status = 'ACTIVE'",
        "SELECT * FROM jobs WHERE status = 'PENDING'",
    ]);
    apart(&[
        "SELECT * FROM jobs WHERE status IN ('ACTIVE', 'DONE')",
        "SELECT * FROM jobs WHERE status IN ('PENDING', 'DONE')",
    ]);
    apart(&[
        "SELECT * FROM jobs WHERE 'ACTIVE' = status",
        "SELECT * FROM jobs WHERE 'PENDING' = status",
    ]);
    // LIKE patterns: a prefix scan or not.
    apart(&[
        "SELECT * FROM t WHERE name LIKE 'ab%'",
        "SELECT * FROM t WHERE name LIKE '%ab'",
    ]);
    // Positions name select-list items.
    apart(&[
        "SELECT a, b FROM t ORDER BY 1",
        "SELECT a, b FROM t ORDER BY 2",
    ]);
    apart(&[
        "SELECT a, b, count(*) FROM t GROUP BY 1, 2",
        "SELECT a, b, count(*) FROM t GROUP BY 2, 1",
    ]);
    // Expression targets keep their code-like literals.
    apart(&[
        "SELECT * FROM t WHERE payload->>'kind' = 'x y'",
        "SELECT * FROM t WHERE payload->>'type' = 'x y'",
    ]);
    apart(&[
        "SELECT * FROM t WHERE payload->0 = 'x y'",
        "SELECT * FROM t WHERE payload->1 = 'x y'",
    ]);
    apart(&[
        "SELECT * FROM t WHERE date_trunc('day', ts) = '2024-01-01'",
        "SELECT * FROM t WHERE date_trunc('hour', ts) = '2024-01-01'",
    ]);
    apart(&[
        "SELECT * FROM t WHERE (ts AT TIME ZONE 'UTC')::date = '2024-01-01'",
        "SELECT * FROM t WHERE (ts AT TIME ZONE 'CET')::date = '2024-01-01'",
    ]);
    // The normalized statement casts a number to its type, and leaves a string bare.
    apart(&[
        "SELECT * FROM t WHERE a = 1",
        "SELECT * FROM t WHERE a = 'x y'",
        "SELECT * FROM t WHERE a = 5000000000",
        "SELECT * FROM t WHERE a = 1.5",
    ]);
}

#[test]
fn token_like_strings_are_never_masked() {
    // Not enum constants today, but the constants module may keep any token-like string.
    apart_keys(&[
        "SELECT * FROM t WHERE name = 'alice'",
        "SELECT * FROM t WHERE name = 'bob'",
    ]);
}

#[test]
fn layout_is_part_of_the_key_but_comment_text_is_not() {
    // `:name` is a placeholder and `: name` is not: the parser reads whitespace there.
    let tight = "SELECT * FROM t WHERE a = :x";
    let loose = "SELECT * FROM t WHERE a = : x";
    assert_ne!(
        fresh(tight, SqlProtocol::Simple),
        fresh(loose, SqlProtocol::Simple)
    );
    apart_keys(&[tight, loose]);
    // sqlcommenter-style comments differ per request and say nothing about the query.
    share(&[
        "SELECT * FROM t WHERE a = 1 /*traceparent='00-4bf92f3577b34da6-01'*/",
        "SELECT * FROM t WHERE a = 2 /*traceparent='00-0af7651916cd43dd-01'*/",
    ]);
    // A comment that may be an optimizer hint is kept whole.
    apart_keys(&[
        "SELECT /*+ SeqScan(t) */ * FROM t WHERE a = 1",
        "SELECT /*+ IndexScan(t) */ * FROM t WHERE a = 1",
    ]);
}

#[test]
fn the_exact_key_is_stored_for_texts_that_repeat_verbatim() {
    let cache = SqlCache::new(64);
    let text = "SELECT * FROM t WHERE a = $1 AND b = 1";
    let _ = cache.lower(&command(text, SqlProtocol::Extended));
    assert_eq!(cache.len(), 2);
    let _ = cache.lower(&command(text, SqlProtocol::Extended));
    assert_eq!((cache.hits(), cache.masked_hits()), (1, 0));
    // Another value: answered by the masked key, and not stored again.
    let _ = cache.lower(&command(
        "SELECT * FROM t WHERE a = $1 AND b = 2",
        SqlProtocol::Extended,
    ));
    assert_eq!((cache.hits(), cache.masked_hits(), cache.len()), (2, 1, 2));

    let cache = SqlCache::new(64);
    let _ = cache.lower(&command(text, SqlProtocol::Simple));
    let _ = cache.lower(&command(text, SqlProtocol::Simple));
    assert_eq!((cache.len(), cache.masked_hits()), (1, 1));

    // A simple-protocol text without a literal comes back verbatim: both keys.
    let cache = SqlCache::new(64);
    for _ in 0..3 {
        let _ = cache.lower(&command(
            "SELECT * FROM t WHERE a IS NULL",
            SqlProtocol::Simple,
        ));
    }
    assert_eq!((cache.len(), cache.hits(), cache.masked_hits()), (2, 2, 0));
}

#[test]
fn text_that_does_not_tokenize_is_cached_by_its_exact_key() {
    let text = "SELECT * FROM t WHERE a = 'unterminated";
    let cache = through_cache(&[text, text], SqlProtocol::Simple);
    assert_eq!(
        (
            cache.misses(),
            cache.hits(),
            cache.masked_hits(),
            cache.len()
        ),
        (1, 1, 0, 1)
    );
}

#[test]
fn protocol_database_and_statement_index_stay_in_the_masked_key() {
    let cache = SqlCache::new(64);
    let copy_to = |text: &str, protocol| cache.lower(&command(text, protocol));
    // COPY TO is a write only through the copy sub-protocol.
    let simple = copy_to(
        "COPY (SELECT * FROM t WHERE a = 1) TO STDOUT",
        SqlProtocol::Simple,
    );
    let copy = copy_to(
        "COPY (SELECT * FROM t WHERE a = 2) TO STDOUT",
        SqlProtocol::Copy,
    );
    assert_eq!(cache.misses(), 2);
    assert_eq!(
        simple,
        fresh(
            "COPY (SELECT * FROM t WHERE a = 1) TO STDOUT",
            SqlProtocol::Simple
        )
    );
    assert_eq!(
        copy,
        fresh(
            "COPY (SELECT * FROM t WHERE a = 2) TO STDOUT",
            SqlProtocol::Copy
        )
    );

    let mut other = command("SELECT * FROM t WHERE a = 1", SqlProtocol::Simple);
    other.database = "other".into();
    let there = cache.lower(&other);
    assert_eq!(there.shapes[0].shape.namespace.database, "other");
    assert_eq!(cache.misses(), 3);

    let mut second = command(
        "SELECT * FROM a WHERE x = 1; SELECT * FROM b WHERE y = 2",
        SqlProtocol::Simple,
    );
    second.statement_index = Some(1);
    let b = cache.lower(&second);
    second.statement_index = Some(0);
    second.text = "SELECT * FROM a WHERE x = 3; SELECT * FROM b WHERE y = 4".into();
    let a = cache.lower(&second);
    assert_eq!(cache.misses(), 5);
    assert_eq!(b.shapes[0].shape.namespace.collection, "b");
    assert_eq!(a.shapes[0].shape.namespace.collection, "a");
}

// ---------------------------------------------------------------------------------------
// The equivalence property over every statement of the SQL tests.
// ---------------------------------------------------------------------------------------

/// The other SQL test files: their string literals that read like SQL are the corpus.
const SOURCES: &[&str] = &[
    include_str!("table.rs"),
    include_str!("lowering.rs"),
    include_str!("identity.rs"),
    include_str!("privacy.rs"),
    include_str!("statements.rs"),
    include_str!("hostile.rs"),
    include_str!("cache.rs"),
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
            Box::new(|token: &Token| match token {
                Token::Number(..) => Some("2".to_owned()),
                Token::SingleQuotedString(_) => Some(quoted("ab%")),
                _ => None,
            }),
        ),
        (
            "every number a bigint, every string a leading wildcard",
            Box::new(|token: &Token| match token {
                Token::Number(..) => Some("5000000000".to_owned()),
                Token::SingleQuotedString(_) => Some(quoted("%ab")),
                _ => None,
            }),
        ),
        (
            "every number a decimal, every string an enum constant",
            Box::new(|token: &Token| match token {
                Token::Number(..) => Some("1.5".to_owned()),
                Token::SingleQuotedString(_) => Some(quoted("ZQ_DONE")),
                _ => None,
            }),
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
                compared += 1;
            }
        }
    }
    // Not vacuous: many variants were answered from the masked entry.
    assert!(compared > 1000, "{compared} comparisons");
    assert!(masked_hits > 300, "{masked_hits} masked hits of {compared}");
    eprintln!("{masked_hits} masked hits of {compared}");
}

//! No value from a statement comes out of lowering: not in a shape, its constants, the
//! normalized text, a rejection, or the Debug of any of them. The one exception is the
//! enum-token policy of the module docs, tested last.

use crate::shape::Lowering;

use super::lower;

/// Pieces of values planted in the statements below; none may come out. The strings hold a
/// hyphen so that none is an enum token, which the policy would keep.
const MARKERS: &[&str] = &[
    "zq-marker",
    "ZQ-MARKER",
    "Zq-Marker",
    "4815162342",
    "271828",
    "1999-12-31",
    "123-45-6789",
];

fn leaks(lowering: &Lowering) -> Vec<String> {
    let mut outputs = vec![format!("{lowering:?}")];
    for occurrence in &lowering.shapes {
        outputs.push(occurrence.shape.canonical());
        outputs.extend(occurrence.normalized_sql.clone());
    }
    let mut found = Vec::new();
    for output in outputs {
        for marker in MARKERS {
            if output.contains(marker) {
                found.push(format!("{marker} in {output}"));
            }
        }
    }
    found
}

#[test]
fn values_never_come_out() {
    let texts = [
        "SELECT * FROM users WHERE email = 'zq-marker@example.com' AND id = 4815162342",
        "SELECT * FROM users WHERE name = 'zq-marker' OR name LIKE 'zq-marker%' OR name ILIKE '%ZQ-MARKER%'",
        "SELECT 'zq-marker', 271828, E'Zq-Marker\\n', $$zq-marker$$ FROM users WHERE id = $1",
        "SELECT * FROM users WHERE born = DATE '1999-12-31' AND ssn = '123-45-6789'",
        "SELECT * FROM users WHERE ts > TIMESTAMP '1999-12-31 00:00:00' - interval '271828 days'",
        "SELECT * FROM users WHERE payload @> '{\"ssn\": \"123-45-6789\"}' AND payload->>'k' = 'zq-marker'",
        "SELECT * FROM users WHERE payload->>'zq marker key' = $1",
        "SELECT * FROM users WHERE id IN (4815162342, 271828) AND name NOT IN ('ZQ-MARKER')",
        "SELECT * FROM users WHERE name IN ('ZQ-MARKER', 'has space zq-marker')",
        "SELECT * FROM users WHERE coalesce(name, 'zq-marker') = 'x y' AND lower(name) = 'zq-marker'",
        "SELECT * FROM users WHERE CASE WHEN id > 271828 THEN 'zq-marker' ELSE 'Zq-Marker' END = 'a b'",
        "SELECT * FROM users WHERE tags && ARRAY['zq-marker'] AND score = ANY(ARRAY[271828])",
        "SELECT * FROM users /* zq-marker */ WHERE id = 1 -- Zq-Marker",
        "SELECT /*+ IndexScan(users zq-marker) */ * FROM users WHERE id = 1",
        "SELECT * FROM users ORDER BY name = 'zq-marker' DESC, id + 4815162342",
        "SELECT * FROM users WHERE id = (SELECT id FROM admins WHERE name = 'zq-marker')",
        "SELECT count(*) FROM users GROUP BY name || 'zq-marker' HAVING count(*) > 271828",
        "UPDATE users SET name = 'zq-marker', n = 271828 WHERE email = 'zq-marker@example.com'",
        "DELETE FROM users WHERE name = 'zq-marker' AND n <> 4815162342",
        "INSERT INTO users (name, n) VALUES ('zq-marker', 271828), ('ZQ-MARKER', 4815162342)",
        "INSERT INTO users (name) SELECT name FROM staged WHERE note = 'zq-marker' ON CONFLICT DO NOTHING",
        "COPY users FROM STDIN; zq-marker\t271828",
        "WITH x AS (SELECT 'zq-marker' AS v) SELECT * FROM users, x WHERE users.name = x.v",
        "SELECT * FROM users WHERE name = 'zq-marker' AND",
        "SELEC 'zq-marker' FROM users",
        "SELECT * FROM users WHERE id = 'zq-marker",
        "SELECT * FROM users WHERE name SIMILAR TO 'zq-marker%' AND name ~ '^Zq-Marker'",
        "SELECT * FROM users WHERE name = U&'zq-marker' AND n = -4815162342",
        "SELECT * FROM users WHERE date_trunc('zq-marker day', ts) = '1999-12-31'",
    ];
    for text in texts {
        let found = leaks(&lower(text));
        assert!(found.is_empty(), "{text}\n{found:#?}");
    }
}

#[test]
fn enum_tokens_are_kept_only_where_the_policy_allows() {
    // `=` and IN with upper-case enum constants: kept as a constant and in the normalized
    // text, never in the shape.
    let lowering = lower(
        "SELECT * FROM jobs WHERE status IN ('ZQ_QUEUED', 'ZQ_RUNNING') AND kind = 'ZQ_DIGEST'",
    );
    let occurrence = &lowering.shapes[0];
    assert!(!occurrence.shape.canonical().contains("ZQ"));
    let constants = format!("{:?}", occurrence.constants);
    for token in ["ZQ_QUEUED", "ZQ_RUNNING", "ZQ_DIGEST"] {
        assert!(constants.contains(token), "{constants}");
        assert!(occurrence
            .normalized_sql
            .as_deref()
            .unwrap_or("")
            .contains(token));
    }

    // Lower- or mixed-case strings look like names and are never kept, even with `=`.
    for text in [
        "SELECT * FROM users WHERE name = 'ZqAlice'",
        "SELECT * FROM users WHERE name IN ('zqalice', 'ZQBOB')",
    ] {
        let debug = format!("{:?}", lower(text));
        assert!(!debug.to_lowercase().contains("zqalice"), "{text}\n{debug}");
        assert!(!debug.contains("ZQBOB"), "{text}\n{debug}");
    }

    // The same token anywhere else is a value.
    for text in [
        "SELECT 'ZqToken' FROM jobs WHERE id = 1",
        "SELECT * FROM jobs WHERE status <> 'ZqToken'",
        "SELECT * FROM jobs WHERE status NOT IN ('ZqToken')",
        "SELECT * FROM jobs WHERE status LIKE 'ZqToken%'",
        "SELECT * FROM jobs WHERE status > 'ZqToken'",
        "SELECT * FROM jobs WHERE status IN ('ZqToken', 'two words')",
        "SELECT * FROM jobs WHERE coalesce(status, 'two words') = 'ZqToken'",
        "UPDATE jobs SET status = 'ZqToken' WHERE id = 1",
        "INSERT INTO jobs (status) VALUES ('ZqToken')",
    ] {
        let lowering = lower(text);
        let debug = format!("{lowering:?}");
        assert!(!debug.contains("ZqToken"), "{text}\n{debug}");
    }
}

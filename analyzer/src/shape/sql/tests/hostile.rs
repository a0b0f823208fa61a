//! Garbage, huge and deep input: never a panic, always a fixed reason.

use crate::shape::Lowering;
use crate::shape::Rejection;

use super::{lower, only};

/// Lower `text` on a thread with a small stack, as a runtime worker might have.
fn lower_on_small_stack(text: String) -> Option<Lowering> {
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || lower(&text))
        .ok()?
        .join()
        .ok()
}

#[test]
fn garbage_is_a_parse_error_or_nothing() {
    for text in [
        "SELECT",
        "SELECT * FROM",
        "'unterminated",
        "\"unterminated",
        "$$",
        "SELECT (((",
        "))) SELECT",
        "\0\0\0",
        "DROP TABLE",
        "ʕ•ᴥ•ʔ SELECT ☃",
        "SELECT * FROM t WHERE a = = 1",
        "SELECT * FROM t WHERE a IN ()",
        "SELECT * FROM t ORDER BY",
    ] {
        let lowering = lower(text);
        assert!(lowering.shapes.is_empty(), "{text}");
        assert_eq!(lowering.rejected, Some(Rejection::SqlParseError), "{text}");
    }
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let noise = String::from_utf8_lossy(&bytes);
    let lowering = lower(&noise);
    assert!(lowering.shapes.is_empty());
}

#[test]
fn every_prefix_of_valid_statements_lowers_without_panicking() {
    let statements = [
        r#"SELECT "t"."a", lower(b) FROM "public"."t" JOIN u ON u.id = t.u_id WHERE t.x IN (1, 'two') AND payload->>'k' = $1 ORDER BY 1 DESC NULLS LAST LIMIT 5 OFFSET 2"#,
        "WITH c AS (SELECT * FROM t WHERE x > now() - interval '1 day') UPDATE u SET n = n + 1 FROM c WHERE u.id = c.id AND u.flag IS NOT TRUE",
        "INSERT INTO t (a) VALUES (1), (2) ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a RETURNING *",
    ];
    for statement in statements {
        for end in (0..=statement.len()).filter(|end| statement.is_char_boundary(*end)) {
            let _ = lower(&statement[..end]);
        }
    }
}

#[test]
fn a_huge_in_list_is_one_leaf_and_one_parameter() {
    let items: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let text = format!("SELECT * FROM t WHERE id IN ({})", items.join(", "));
    assert_eq!(
        only(&text).normalized_sql.as_deref(),
        Some("SELECT * FROM t WHERE id = ANY($1::INTEGER[])")
    );
}

#[test]
fn deep_nesting_is_refused_not_followed() {
    let parentheses = format!(
        "SELECT * FROM t WHERE a = {}1{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert_eq!(
        lower(&parentheses).rejected,
        Some(Rejection::SqlUnsupported)
    );

    let chain: Vec<String> = (0..10_000).map(|i| format!("a = {i}")).collect();
    let or_chain = format!("SELECT * FROM t WHERE {}", chain.join(" OR "));
    assert_eq!(lower(&or_chain).rejected, Some(Rejection::SqlUnsupported));

    let arithmetic = format!("SELECT * FROM t WHERE a = 1{}", " + 1".repeat(50_000));
    assert_eq!(lower(&arithmetic).rejected, Some(Rejection::SqlUnsupported));

    let subqueries = format!(
        "SELECT * FROM t WHERE a IN {}1{}",
        "(SELECT a FROM t WHERE a IN ".repeat(100),
        ")".repeat(100)
    );
    assert_eq!(lower(&subqueries).rejected, Some(Rejection::SqlUnsupported));

    let negations = format!("SELECT * FROM t WHERE {} a", "NOT ".repeat(1_000));
    assert!(lower(&negations).rejected.is_some());
}

#[test]
fn the_deepest_accepted_statements_fit_a_small_stack() {
    // Just under the depth bound: lowered on a thread of its own, whatever the caller's stack.
    let chain: Vec<String> = (0..120).map(|i| format!("a = {i}")).collect();
    let or_chain = format!("SELECT * FROM t WHERE {}", chain.join(" OR "));
    let arithmetic = format!("SELECT * FROM t WHERE a = 1{}", " + 1".repeat(250));
    let casts = format!("SELECT * FROM t WHERE a{} = 1", "::int".repeat(250));
    // Just under the inline bound: lowered on the caller's stack.
    let inline = format!("SELECT * FROM t WHERE a = 1{}", " + 1".repeat(60));
    for text in [or_chain, arithmetic, casts, inline] {
        let lowering = lower_on_small_stack(text.clone());
        let shapes = lowering.map(|lowering| (lowering.rejected, lowering.shapes.len()));
        assert_eq!(shapes, Some((None, 1)), "{}", &text[..60]);
    }
}

#[test]
fn a_long_text_of_many_statements_is_fine() {
    let text = "SELECT * FROM t WHERE a = 1 AND b = 'x';".repeat(2_000);
    let lowering = lower(&text);
    assert_eq!(lowering.shapes.len(), 2_000);
    assert!(lowering
        .shapes
        .windows(2)
        .all(|pair| pair[0].shape == pair[1].shape));
}

//! Candidate generation, one rule per test, over hand-built snapshots.

use super::*;
use crate::advise::{Condition, IndexMethod, PartialTerm};
use crate::shape::{
    BoundConstant, Constant, Namespace, OpClass, Operator, Predicate, Shape, SortKey, Target,
    ValueType,
};
use crate::snapshot::{LatencySketch, ShapeRecord, Snapshot};

pub(crate) fn field(name: &str) -> Target {
    Target::Field(name.to_owned())
}

pub(crate) fn leaf(name: &str, operator: &str, class: OpClass) -> Predicate {
    leaf_on(field(name), operator, class)
}

pub(crate) fn leaf_on(target: Target, operator: &str, class: OpClass) -> Predicate {
    Predicate::Leaf(Leaf {
        target,
        operator: operator.into(),
        class,
        value_type: ValueType::Param,
    })
}

pub(crate) fn eq(name: &str) -> Predicate {
    leaf(name, "$eq", OpClass::Eq)
}

pub(crate) fn sort(name: &str, direction: i8) -> SortKey {
    SortKey {
        target: field(name),
        direction,
        nulls_first: None,
    }
}

pub(crate) fn record(shape: Shape, count: u64) -> ShapeRecord {
    ShapeRecord {
        shape: shape.into(),
        count,
        errors: 0,
        error_codes: Default::default(),
        total_micros: count * 1_000,
        returned: 0,
        continuations: 0,
        first_seen_ms: 0,
        last_seen_ms: 0,
        constants: Vec::new(),
        normalized_sql: None,
        latency: LatencySketch::with_value(1_000, count),
    }
}

pub(crate) fn snapshot(records: Vec<ShapeRecord>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for record in records {
        snapshot.shapes.insert(record.shape.id(), record);
    }
    snapshot
}

fn orders() -> Namespace {
    Namespace::mongo("app", "orders")
}

fn runs() -> Namespace {
    Namespace::postgres("app", "public", "runs")
}

fn find(namespace: Namespace, filter: Predicate) -> Shape {
    let mut shape = Shape::new(namespace, "find");
    shape.filter = filter;
    shape
}

/// The candidates as `(method, [(key, direction)], partial, include)`, in a stable order.
type Summary = (
    IndexMethod,
    Vec<(String, i8)>,
    Vec<PartialTerm>,
    Vec<String>,
);

fn summarize(candidates: &[Candidate]) -> Vec<Summary> {
    let mut out: Vec<Summary> = candidates
        .iter()
        .map(|candidate| {
            let keys = candidate
                .index
                .keys
                .iter()
                .map(|key| {
                    let name = match &key.target {
                        Target::Field(name) => name.clone(),
                        Target::Expression { text, .. } => text.clone(),
                    };
                    (name, key.direction)
                })
                .collect();
            (
                candidate.index.method,
                keys,
                candidate.index.partial.clone(),
                candidate.index.include.clone(),
            )
        })
        .collect();
    out.sort();
    out
}

fn keys_of(records: Vec<ShapeRecord>) -> Vec<Vec<(String, i8)>> {
    summarize(&from_snapshot(&snapshot(records)))
        .into_iter()
        .map(|(_, keys, _, _)| keys)
        .collect()
}

/// The candidate keys for `shape`, run once.
fn keys_for(shape: Shape) -> Vec<Vec<(String, i8)>> {
    keys_of(vec![record(shape, 1)])
}

fn keys(list: &[(&str, i8)]) -> Vec<(String, i8)> {
    list.iter().map(|(n, d)| (n.to_string(), *d)).collect()
}

#[test]
fn equality_then_sort_then_range() {
    let mut shape = find(
        orders(),
        Predicate::And(vec![leaf("total", "$gte", OpClass::Range), eq("status")]),
    );
    shape.sort = vec![sort("delivery_date", -1)];
    let candidates = from_snapshot(&snapshot(vec![record(shape.clone(), 10)]));
    assert_eq!(candidates.len(), 1);
    assert_eq!(
        summarize(&candidates)[0].1,
        keys(&[("status", 1), ("delivery_date", -1), ("total", 1)])
    );
    assert_eq!(
        candidates[0].roles,
        vec![KeyRole::Equality, KeyRole::Sort, KeyRole::Range]
    );
    assert_eq!(candidates[0].serves, BTreeSet::from([shape.id()]));
}

#[test]
fn in_is_equality_without_a_sort_and_goes_after_the_sort_with_one() {
    let filter = Predicate::And(vec![leaf("status", "$in", OpClass::In), eq("customer_id")]);
    let unsorted = find(orders(), filter.clone());
    assert_eq!(
        keys_for(unsorted),
        vec![keys(&[("customer_id", 1), ("status", 1)])]
    );
    let mut sorted = find(orders(), filter);
    sorted.sort = vec![sort("created_at", -1)];
    assert_eq!(
        keys_for(sorted),
        vec![keys(&[
            ("customer_id", 1),
            ("created_at", -1),
            ("status", 1)
        ])]
    );
}

#[test]
fn several_ranges_give_one_range_key() {
    let shape = find(
        orders(),
        Predicate::And(vec![
            eq("status"),
            leaf("total", "$gte", OpClass::Range),
            leaf("total", "$lt", OpClass::Range),
            leaf("created_at", "$gt", OpClass::Range),
            leaf("sku", "$regex", OpClass::Prefix),
        ]),
    );
    let all = keys_for(shape);
    assert_eq!(all.len(), 1);
    assert_eq!(
        all[0].len(),
        2,
        "one equality key and one range key: {all:?}"
    );
    assert_eq!(all[0][0], ("status".to_owned(), 1));
}

#[test]
fn the_range_key_is_the_one_most_shapes_share() {
    let ranged = |other: &str| {
        find(
            orders(),
            Predicate::And(vec![
                eq("status"),
                leaf("created_at", "$gt", OpClass::Range),
                leaf(other, "$lt", OpClass::Range),
            ]),
        )
    };
    let all = keys_of(vec![
        record(ranged("a_total"), 1),
        record(ranged("b_total"), 1),
    ]);
    assert_eq!(
        all,
        vec![
            keys(&[("status", 1), ("created_at", 1)]),
            keys(&[("status", 1), ("created_at", 1)])
        ]
    );
}

#[test]
fn a_range_on_the_sort_field_needs_no_extra_key() {
    let mut shape = find(
        orders(),
        Predicate::And(vec![eq("job_id"), leaf("timestamp", "$gt", OpClass::Range)]),
    );
    shape.sort = vec![sort("timestamp", 1)];
    assert_eq!(
        keys_for(shape),
        vec![keys(&[("job_id", 1), ("timestamp", 1)])]
    );
}

#[test]
fn or_gives_one_candidate_per_branch() {
    let shape = find(
        orders(),
        Predicate::And(vec![
            eq("tenant"),
            Predicate::Or(vec![eq("email"), eq("phone")]),
        ]),
    );
    let candidates = from_snapshot(&snapshot(vec![record(shape.clone(), 1)]));
    assert_eq!(
        summarize(&candidates)
            .into_iter()
            .map(|s| s.1)
            .collect::<Vec<_>>(),
        vec![
            keys(&[("email", 1), ("tenant", 1)]),
            keys(&[("phone", 1), ("tenant", 1)])
        ]
    );
    assert!(candidates.iter().all(|c| c.serves.contains(&shape.id())));
}

#[test]
fn an_or_branch_without_an_indexable_leaf_means_no_candidate() {
    let hopeless = find(
        orders(),
        Predicate::Or(vec![eq("email"), leaf("phone", "$ne", OpClass::Ne)]),
    );
    let negated = find(
        orders(),
        Predicate::Or(vec![eq("email"), Predicate::Not(Box::new(eq("phone")))]),
    );
    assert!(keys_of(vec![record(hopeless, 1), record(negated, 1)]).is_empty());
}

#[test]
fn a_hopeless_or_under_an_and_is_left_to_the_filter() {
    let shape = find(
        orders(),
        Predicate::And(vec![
            eq("status"),
            Predicate::Or(vec![
                eq("email"),
                leaf("x", "$where", OpClass::NotIndexable),
            ]),
        ]),
    );
    assert_eq!(keys_for(shape), vec![keys(&[("status", 1)])]);
}

#[test]
fn not_nor_ne_and_not_indexable_are_never_keys() {
    let shape = find(
        orders(),
        Predicate::And(vec![
            eq("status"),
            leaf("kind", "$ne", OpClass::Ne),
            leaf("code", "$where", OpClass::NotIndexable),
            Predicate::Not(Box::new(eq("a"))),
            Predicate::Nor(vec![eq("b")]),
            leaf("flag", "$exists", OpClass::Exists),
        ]),
    );
    assert_eq!(keys_for(shape), vec![keys(&[("status", 1)])]);
}

#[test]
fn elem_match_joins_paths() {
    let shape = find(
        orders(),
        Predicate::ElemMatch {
            path: "items".to_owned(),
            predicate: Box::new(Predicate::And(vec![
                eq("sku"),
                leaf("qty", "$gt", OpClass::Range),
            ])),
        },
    );
    assert_eq!(
        keys_for(shape),
        vec![keys(&[("items.sku", 1), ("items.qty", 1)])]
    );
}

#[test]
fn equality_order_follows_sharing_and_a_tenant_key_leads_everything() {
    let namespace = orders();
    let mut by_status = find(
        namespace.clone(),
        Predicate::And(vec![eq("tenant_id"), eq("status")]),
    );
    by_status.sort = vec![sort("created_at", -1)];
    let by_customer = find(
        namespace.clone(),
        Predicate::And(vec![eq("customer"), eq("tenant_id"), eq("status")]),
    );
    let by_email = find(
        namespace.clone(),
        Predicate::And(vec![eq("email"), eq("tenant_id")]),
    );
    let mut recent = find(namespace, Predicate::And(vec![eq("tenant_id")]));
    recent.sort = vec![sort("created_at", -1)];
    recent.limit = true;
    let all = keys_of(vec![
        record(by_status, 5),
        record(by_customer, 50),
        record(by_email, 1),
        record(recent, 1),
    ]);
    assert_eq!(
        all,
        vec![
            keys(&[("tenant_id", 1), ("created_at", -1)]),
            keys(&[("tenant_id", 1), ("email", 1)]),
            keys(&[("tenant_id", 1), ("status", 1), ("created_at", -1)]),
            keys(&[("tenant_id", 1), ("status", 1), ("customer", 1)]),
        ]
    );
}

#[test]
fn equal_sharing_breaks_ties_by_executions_then_name() {
    let a = find(orders(), Predicate::And(vec![eq("b_field"), eq("a_field")]));
    assert_eq!(
        keys_of(vec![record(a.clone(), 1)]),
        vec![keys(&[("a_field", 1), ("b_field", 1)])]
    );
    let heavy = find(orders(), Predicate::And(vec![eq("b_field"), eq("c")]));
    let light = find(orders(), Predicate::And(vec![eq("a_field"), eq("d")]));
    let all = keys_of(vec![record(a, 1), record(heavy, 100), record(light, 1)]);
    assert!(
        all.contains(&keys(&[("b_field", 1), ("a_field", 1)])),
        "b_field ran more often: {all:?}"
    );
}

#[test]
fn mongo_exists_and_type_constants_become_a_partial_filter() {
    let shape = find(
        orders(),
        Predicate::And(vec![
            eq("status"),
            leaf("email", "$exists", OpClass::Exists),
            leaf("due", "$type", OpClass::Type),
        ]),
    );
    let mut rec = record(shape, 1);
    rec.constants = vec![
        BoundConstant {
            target: field("email"),
            operator: "$exists".into(),
            constant: Constant::Exists(true),
        },
        BoundConstant {
            target: field("due"),
            operator: "$type".into(),
            constant: Constant::Type("date".to_owned()),
        },
    ];
    let candidates = summarize(&from_snapshot(&snapshot(vec![rec])));
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].1, keys(&[("status", 1)]));
    assert_eq!(
        candidates[0].2,
        vec![
            PartialTerm {
                target: field("due"),
                condition: Condition::Type("date".to_owned())
            },
            PartialTerm {
                target: field("email"),
                condition: Condition::Exists(true)
            },
        ]
    );
}

#[test]
fn postgres_null_tests_bools_and_tokens_become_a_partial_where() {
    let mut shape = Shape::new(runs(), "select");
    shape.filter = Predicate::And(vec![
        leaf("customer_id", "=", OpClass::Eq),
        leaf("deleted_at", "IS NULL", OpClass::IsNull),
        leaf("finished_at", "IS NOT NULL", OpClass::NotNull),
        leaf("is_active", "=", OpClass::Eq),
        leaf("status", "IN", OpClass::In),
    ]);
    let mut rec = record(shape, 1);
    rec.constants = vec![
        BoundConstant {
            target: field("is_active"),
            operator: "=".into(),
            constant: Constant::Bool(true),
        },
        BoundConstant {
            target: field("status"),
            operator: "IN".into(),
            constant: Constant::Tokens(vec!["QUEUED".to_owned(), "PENDING".to_owned()]),
        },
    ];
    let candidates = summarize(&from_snapshot(&snapshot(vec![rec])));
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].1, keys(&[("customer_id", 1)]));
    let conditions: Vec<(String, Condition)> = candidates[0]
        .2
        .iter()
        .map(|term| (term.target.column().to_owned(), term.condition.clone()))
        .collect();
    assert_eq!(
        conditions,
        vec![
            ("deleted_at".to_owned(), Condition::IsNull),
            ("finished_at".to_owned(), Condition::IsNotNull),
            ("is_active".to_owned(), Condition::Bool(true)),
            (
                "status".to_owned(),
                Condition::InTokens(vec!["QUEUED".to_owned(), "PENDING".to_owned()])
            ),
        ]
    );
}

#[test]
fn a_partial_term_alone_is_no_index_but_with_a_sort_and_limit_it_is() {
    let mut alone = Shape::new(runs(), "select");
    alone.filter = Predicate::And(vec![leaf("deleted_at", "IS NULL", OpClass::IsNull)]);
    assert!(keys_of(vec![record(alone.clone(), 1)]).is_empty());
    let mut recent = alone;
    recent.sort = vec![sort("created_at", -1)];
    recent.limit = true;
    let candidates = summarize(&from_snapshot(&snapshot(vec![record(recent, 1)])));
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].1, keys(&[("created_at", -1)]));
    assert_eq!(candidates[0].2.len(), 1);
}

#[test]
fn empty_filter_sort_needs_a_limit() {
    let mut sorted = Shape::new(orders(), "find");
    sorted.sort = vec![sort("created_at", -1), sort("_id", -1)];
    assert!(keys_of(vec![record(sorted.clone(), 1)]).is_empty());
    sorted.limit = true;
    assert_eq!(
        keys_for(sorted),
        vec![keys(&[("created_at", -1), ("_id", -1)])]
    );
}

#[test]
fn mongo_id_alone_or_in_equality_needs_nothing() {
    let by_id = find(orders(), Predicate::And(vec![eq("_id"), eq("status")]));
    let mut newest = Shape::new(orders(), "find");
    newest.sort = vec![sort("_id", -1)];
    newest.limit = true;
    assert!(keys_of(vec![record(by_id, 1), record(newest, 1)]).is_empty());
}

#[test]
fn mongo_text_search_gets_a_wildcard_text_index() {
    let shape = find(
        orders(),
        Predicate::And(vec![eq("status"), leaf("$text", "$text", OpClass::Text)]),
    );
    let candidates = summarize(&from_snapshot(&snapshot(vec![record(shape, 1)])));
    assert_eq!(
        candidates.len(),
        1,
        "a $text query uses only the text index"
    );
    assert_eq!(candidates[0].0, IndexMethod::Text);
    assert_eq!(candidates[0].1, keys(&[("$**", 0)]));
}

#[test]
fn postgres_infix_gets_a_trigram_index_beside_the_btree() {
    let mut shape = Shape::new(runs(), "select");
    shape.filter = Predicate::And(vec![
        leaf("customer_id", "=", OpClass::Eq),
        leaf("name", "ILIKE", OpClass::Infix),
    ]);
    let candidates = summarize(&from_snapshot(&snapshot(vec![record(shape, 1)])));
    assert_eq!(
        candidates
            .iter()
            .map(|c| (c.0, c.1.clone()))
            .collect::<Vec<_>>(),
        vec![
            (IndexMethod::Btree, keys(&[("customer_id", 1)])),
            (IndexMethod::GinTrgm, keys(&[("name", 1)])),
        ]
    );
}

#[test]
fn mongo_infix_is_left_to_the_filter() {
    let shape = find(
        orders(),
        Predicate::And(vec![leaf("name", "$regex", OpClass::Infix)]),
    );
    assert!(keys_for(shape).is_empty());
}

#[test]
fn jsonb_containment_gets_a_gin_index() {
    let mut shape = Shape::new(runs(), "select");
    shape.filter = Predicate::And(vec![leaf("payload", "@>", OpClass::JsonContains)]);
    let candidates = summarize(&from_snapshot(&snapshot(vec![record(shape, 1)])));
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].0, IndexMethod::Gin);
    assert_eq!(candidates[0].1, keys(&[("payload", 1)]));
}

#[test]
fn a_short_select_list_is_included() {
    let mut shape = Shape::new(runs(), "select");
    shape.filter = Predicate::And(vec![leaf("customer_id", "=", OpClass::Eq)]);
    shape.sort = vec![sort("started_at", -1)];
    shape.projection = vec!["customer_id".into(), "id".into(), "status".into()];
    let candidates = summarize(&from_snapshot(&snapshot(vec![record(shape.clone(), 1)])));
    assert_eq!(candidates[0].3, vec!["id".to_owned(), "status".to_owned()]);

    let mut wide = shape.clone();
    wide.projection = vec!["a".into(), "b".into(), "c".into(), "d".into()];
    assert!(
        summarize(&from_snapshot(&snapshot(vec![record(wide, 1)])))[0]
            .3
            .is_empty()
    );

    let mut star = shape.clone();
    star.projection = vec!["*".into()];
    assert!(
        summarize(&from_snapshot(&snapshot(vec![record(star, 1)])))[0]
            .3
            .is_empty()
    );

    let mut mongo = shape;
    mongo.namespace = orders();
    mongo.command = "find".into();
    assert!(
        summarize(&from_snapshot(&snapshot(vec![record(mongo, 1)])))[0]
            .3
            .is_empty()
    );
}

#[test]
fn residual_filter_columns_join_the_include_list() {
    let mut shape = Shape::new(runs(), "select");
    shape.filter = Predicate::And(vec![
        leaf("customer_id", "=", OpClass::Eq),
        leaf("kind", "<>", OpClass::Ne),
    ]);
    shape.projection = vec!["id".into()];
    let candidates = summarize(&from_snapshot(&snapshot(vec![record(shape, 1)])));
    assert_eq!(candidates[0].3, vec!["id".to_owned(), "kind".to_owned()]);
}

#[test]
fn expression_targets_are_expression_keys() {
    let lower = Target::Expression {
        text: "lower(\"email\")".to_owned(),
        column: "email".to_owned(),
    };
    let mut shape = Shape::new(Namespace::postgres("app", "public", "users"), "select");
    shape.filter = Predicate::And(vec![leaf_on(lower.clone(), "=", OpClass::Eq)]);
    let candidates = from_snapshot(&snapshot(vec![record(shape, 1)]));
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].index.keys[0].target, lower);
}

#[test]
fn join_leaves_are_equality() {
    let mut shape = Shape::new(runs(), "select");
    shape.filter = Predicate::And(vec![
        leaf(
            "pipeline_id",
            Operator::JOIN.as_str(),
            OpClass::NotIndexable,
        ),
        leaf("queued_at", ">=", OpClass::Range),
    ]);
    shape.projection = vec!["id".into()];
    let candidates = summarize(&from_snapshot(&snapshot(vec![record(shape, 1)])));
    assert_eq!(
        candidates[0].1,
        keys(&[("pipeline_id", 1), ("queued_at", 1)])
    );
    assert!(candidates[0].3.is_empty(), "no INCLUDE across a join");
}

#[test]
fn join_keys_follow_the_own_equalities() {
    let mut shape = Shape::new(Namespace::postgres("app", "public", "pipelines"), "select");
    shape.filter = Predicate::And(vec![
        leaf("id", Operator::JOIN.as_str(), OpClass::Eq),
        leaf("user_id", "=", OpClass::Eq),
    ]);
    let mut other = shape.clone();
    other.filter = Predicate::And(vec![
        leaf("id", Operator::JOIN.as_str(), OpClass::Eq),
        leaf("a", "=", OpClass::Eq),
    ]);
    other.command = "delete".into();
    assert_eq!(
        keys_of(vec![record(shape, 1), record(other, 1)]),
        vec![
            keys(&[("a", 1), ("id", 1)]),
            keys(&[("user_id", 1), ("id", 1)])
        ],
        "id is in two shapes, but only as a join key"
    );
}

#[test]
fn postgres_sort_keeps_a_non_default_null_order() {
    let mut shape = Shape::new(runs(), "select");
    shape.filter = Predicate::And(vec![leaf("customer_id", "=", OpClass::Eq)]);
    shape.sort = vec![
        SortKey {
            target: field("started_at"),
            direction: -1,
            nulls_first: Some(false),
        },
        SortKey {
            target: field("id"),
            direction: -1,
            nulls_first: Some(true),
        },
    ];
    let candidates = from_snapshot(&snapshot(vec![record(shape, 1)]));
    let nulls: Vec<Option<bool>> = candidates[0]
        .index
        .keys
        .iter()
        .map(|k| k.nulls_first)
        .collect();
    assert_eq!(nulls, vec![None, Some(false), None]);
}

#[test]
fn inserts_and_write_only_namespaces_get_nothing() {
    let insert = Shape::new(orders(), "insert");
    let mut snapshot = snapshot(vec![record(insert, 10)]);
    snapshot.writes.push(crate::snapshot::WriteRecord {
        namespace: Namespace::mongo("app", "events"),
        inserts: 1_000,
        updates: 0,
        deletes: 0,
        insert_micros: 0,
    });
    assert!(from_snapshot(&snapshot).is_empty());
}

#[test]
fn too_many_or_branches_are_not_advised() {
    let wide_or = |prefix: &str| {
        Predicate::Or(
            (0..6)
                .map(|i| eq(&format!("{prefix}{i}")))
                .collect::<Vec<_>>(),
        )
    };
    let shape = find(orders(), Predicate::And(vec![wide_or("a"), wide_or("b")]));
    assert!(keys_for(shape).is_empty());
}

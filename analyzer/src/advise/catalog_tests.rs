//! Advice with the catalog's facts: permuted keys, unique prefixes, unused indexes.

use std::collections::BTreeMap;

use super::candidates::tests::{eq, record, snapshot, sort};
use super::*;
use crate::catalog::{Baseline, FieldStatistics, IndexUsage, NamespaceStatistics};
use crate::shape::{Predicate, Shape, Target};
use crate::snapshot::WriteRecord;

fn spec(namespace: &Namespace, keys: &[&str], name: &str, unique: bool) -> IndexSpec {
    IndexSpec {
        namespace: namespace.clone(),
        keys: keys
            .iter()
            .map(|key| IndexKey::asc(Target::Field((*key).to_owned())))
            .collect(),
        method: IndexMethod::Btree,
        partial: Vec::new(),
        include: Vec::new(),
        unique,
        name: Some(name.to_owned()),
    }
}

fn shape(namespace: &Namespace, equalities: &[&str]) -> Shape {
    let mut shape = Shape::new(namespace.clone(), "select");
    shape.filter = Predicate::And(equalities.iter().map(|f| eq(f)).collect());
    shape
}

/// TPC-C's `district`, and its primary key `(d_w_id, d_id)`.
fn district_and_its_primary_key() -> (Namespace, ExistingIndexes) {
    let district = Namespace::postgres("tpcc", "public", "district");
    let pkey = spec(&district, &["d_w_id", "d_id"], "district_pkey", true);
    (
        district.clone(),
        ExistingIndexes::from([(district, vec![pkey])]),
    )
}

fn key_names(advice: &Advice) -> Vec<Vec<String>> {
    advice
        .recommendations
        .iter()
        .map(|r| {
            r.index
                .keys
                .iter()
                .map(|k| k.target.column().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn a_primary_key_serves_its_columns_in_any_order() {
    let (district, existing) = district_and_its_primary_key();
    let mut sorted = shape(&district, &["d_id", "d_w_id"]);
    sorted.sort = vec![sort("d_next_o_id", -1)];
    let snapshot = snapshot(vec![
        record(shape(&district, &["d_id", "d_w_id"]), 5),
        record(shape(&district, &["d_w_id"]), 5),
        record(sorted, 5),
    ]);
    let advice = advise(&snapshot, &existing);
    assert!(advice.recommendations.is_empty(), "{advice:#?}");
}

#[test]
fn permuted_candidates_become_one() {
    let orders = Namespace::postgres("app", "public", "orders");
    let mut with_sort = shape(&orders, &["b", "a"]);
    with_sort.sort = vec![sort("c", 1)];
    let snapshot = snapshot(vec![
        record(shape(&orders, &["a", "b"]), 5),
        record(with_sort, 5),
    ]);
    let advice = advise(&snapshot, &ExistingIndexes::new());
    assert_eq!(key_names(&advice).len(), 1, "{advice:#?}");
    assert_eq!(advice.recommendations[0].serves.len(), 2);
}

#[test]
fn a_whole_document_filter_gets_its_unique_prefix() {
    let customer = Namespace::mongo("app", "customer");
    let whole = ["w_id", "d_id", "c_id", "first", "last", "credit", "balance"];
    let mut records: Vec<_> = (0..10)
        .map(|variant| {
            let extra = format!("extra_{variant}");
            let mut fields: Vec<&str> = whole.to_vec();
            fields.push(&extra);
            let mut shape = shape(&customer, &fields);
            shape.command = "update".into();
            record(shape, 3)
        })
        .collect();
    records.push(record(shape(&customer, &["w_id", "d_id", "c_id"]), 30));
    let snapshot = snapshot(records);
    let mut fields: BTreeMap<String, FieldStatistics> = [
        ("w_id", 1.0),
        ("d_id", 10.0),
        ("c_id", 300.0),
        ("first", 97.0),
        ("last", 500.0),
        ("credit", 2.0),
        ("balance", 50.0),
    ]
    .into_iter()
    .map(|(name, distinct)| (name.to_owned(), FieldStatistics::uniform(distinct)))
    .collect();
    for variant in 0..10 {
        fields.insert(
            format!("extra_{variant}"),
            FieldStatistics {
                distinct: 300.0,
                null_fraction: 0.9,
                most_common_frequencies: Vec::new(),
            },
        );
    }
    let facts = CatalogFacts {
        statistics: BTreeMap::from([(
            customer,
            NamespaceStatistics {
                rows: 3000.0,
                sample_size: Some(3000),
                fields,
            },
        )]),
        ..CatalogFacts::default()
    };
    let advice = advise_with(
        &snapshot,
        &ExistingIndexes::new(),
        &facts,
        &AdviceSettings::default(),
    );
    // Every shape tests the three for equality; the most selective lead, and the key stops
    // once it finds one document (w_id, with one value, would narrow nothing).
    assert_eq!(
        key_names(&advice),
        vec![vec!["c_id", "d_id"]],
        "{advice:#?}"
    );
    assert_eq!(advice.recommendations[0].serves.len(), 11);
}

fn usage_facts(namespace: &Namespace, name: &str, window_ms: u64, uses: u64) -> CatalogFacts {
    CatalogFacts {
        usage: BTreeMap::from([(
            namespace.clone(),
            vec![
                IndexUsage {
                    name: name.to_owned(),
                    uses: Some(uses),
                    baseline: Some(Baseline {
                        uses: 0,
                        at_ms: 1_000,
                    }),
                    constraints: Vec::new(),
                },
                IndexUsage {
                    name: "sbtest1_pkey".to_owned(),
                    uses: Some(0),
                    baseline: Some(Baseline {
                        uses: 0,
                        at_ms: 1_000,
                    }),
                    constraints: vec![crate::catalog::Constraint::PrimaryKey],
                },
            ],
        )]),
        read_at_ms: 1_000 + window_ms,
        ..CatalogFacts::default()
    }
}

#[test]
fn an_unused_index_maintained_by_writes_is_a_drop_with_evidence() {
    let table = Namespace::postgres("sbtest", "public", "sbtest1");
    let existing = ExistingIndexes::from([(
        table.clone(),
        vec![
            spec(&table, &["id"], "sbtest1_pkey", true),
            spec(&table, &["k"], "k_1", false),
        ],
    )]);
    let mut snapshot = snapshot(vec![record(shape(&table, &["id"]), 50)]);
    snapshot.writes.push(WriteRecord {
        namespace: table.clone(),
        inserts: 10,
        updates: 40,
        deletes: 10,
        insert_micros: 0,
    });
    let settings = AdviceSettings {
        drop_min_window_secs: 60,
        ..AdviceSettings::default()
    };
    let advise = |facts: &CatalogFacts| advise_with(&snapshot, &existing, facts, &settings);

    let advice = advise(&usage_facts(&table, "k_1", 120_000, 0));
    assert_eq!(advice.drops.len(), 1, "{advice:#?}");
    assert_eq!(advice.drops[0].name, "k_1");
    assert_eq!(
        advice.drops[0].evidence,
        Some(DropEvidence {
            writes: 60,
            window_secs: 120.0,
            server_uses: 0
        })
    );
    assert!(
        advise(&usage_facts(&table, "k_1", 30_000, 0))
            .drops
            .is_empty(),
        "a window shorter than the setting says nothing"
    );
    assert!(
        advise(&usage_facts(&table, "k_1", 120_000, 3))
            .drops
            .is_empty(),
        "the server counted uses the proxy did not see"
    );
    let mut reads_k = snapshot.clone();
    let by_k = shape(&table, &["k"]);
    reads_k.shapes.insert(by_k.id(), record(by_k, 1));
    assert!(
        advise_with(
            &reads_k,
            &existing,
            &usage_facts(&table, "k_1", 120_000, 0),
            &settings
        )
        .drops
        .is_empty(),
        "a captured shape can use it"
    );
}

#[test]
fn a_unique_prefix_cut_short_is_still_served_by_the_key_it_came_from() {
    let (district, existing) = district_and_its_primary_key();
    let snapshot = snapshot(vec![record(shape(&district, &["d_id", "d_w_id"]), 5)]);
    // One warehouse: d_id alone finds one row, so the candidate is cut to (d_id).
    let facts = CatalogFacts {
        statistics: BTreeMap::from([(
            district,
            NamespaceStatistics {
                rows: 10.0,
                sample_size: None,
                fields: BTreeMap::from([
                    ("d_w_id".to_owned(), FieldStatistics::uniform(1.0)),
                    ("d_id".to_owned(), FieldStatistics::uniform(10.0)),
                ]),
            },
        )]),
        ..CatalogFacts::default()
    };
    let advice = advise_with(&snapshot, &existing, &facts, &AdviceSettings::default());
    assert!(advice.recommendations.is_empty(), "{advice:#?}");
}

#[test]
fn shapes_that_differ_past_a_selective_prefix_share_one_index() {
    let orders = Namespace::postgres("shop", "public", "orders");
    let mut newest = shape(&orders, &["customer_id"]);
    newest.sort = vec![sort("created_at", -1)];
    let mut first = shape(&orders, &["customer_id"]);
    first.sort = vec![sort("id", 1)];
    let snapshot = snapshot(vec![record(newest, 30), record(first, 30)]);
    // Ten orders per customer: sorting them needs no index of its own.
    let facts = CatalogFacts {
        statistics: BTreeMap::from([(
            orders.clone(),
            NamespaceStatistics {
                rows: 40_000.0,
                sample_size: None,
                fields: BTreeMap::from([(
                    "customer_id".to_owned(),
                    FieldStatistics::uniform(4_000.0),
                )]),
            },
        )]),
        ..CatalogFacts::default()
    };
    let none = ExistingIndexes::new();
    let advice = advise_with(&snapshot, &none, &facts, &AdviceSettings::default());
    assert_eq!(key_names(&advice), vec![vec!["customer_id"]], "{advice:#?}");
    assert_eq!(advice.recommendations[0].serves.len(), 2);
    let with_fk = ExistingIndexes::from([(
        orders.clone(),
        vec![spec(
            &orders,
            &["customer_id"],
            "orders_customer_id_idx",
            false,
        )],
    )]);
    let advice = advise_with(&snapshot, &with_fk, &facts, &AdviceSettings::default());
    assert!(
        advice.recommendations.is_empty(),
        "the foreign key's index serves both: {advice:#?}"
    );
}

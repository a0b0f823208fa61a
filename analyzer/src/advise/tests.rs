//! The whole pipeline, `advise()`, over hand-built snapshots and catalogs.

use super::candidates::tests::{eq, field, leaf, record, snapshot, sort};
use super::*;
use crate::shape::{OpClass, Predicate, Shape};

fn find(
    namespace: &Namespace,
    filter: Vec<Predicate>,
    sort_keys: Vec<crate::shape::SortKey>,
) -> Shape {
    let mut shape = Shape::new(namespace.clone(), "find");
    shape.filter = Predicate::And(filter);
    shape.sort = sort_keys;
    shape
}

fn spec(namespace: &Namespace, keys: &[(&str, i8)], name: &str) -> IndexSpec {
    IndexSpec {
        namespace: namespace.clone(),
        keys: keys
            .iter()
            .map(|(column, direction)| IndexKey::new(field(column), *direction))
            .collect(),
        method: IndexMethod::Btree,
        partial: Vec::new(),
        include: Vec::new(),
        unique: false,
        name: Some(name.to_owned()),
    }
}

fn names(advice: &Advice) -> Vec<&str> {
    advice
        .recommendations
        .iter()
        .map(|r| r.name.as_str())
        .collect()
}

#[test]
fn a_prefix_shape_is_served_by_the_longer_index() {
    let orders = Namespace::mongo("app", "orders");
    let by_status = find(&orders, vec![eq("status")], vec![]);
    let by_status_sorted = find(&orders, vec![eq("status")], vec![sort("delivery_date", -1)]);
    let snapshot = snapshot(vec![
        record(by_status.clone(), 10),
        record(by_status_sorted.clone(), 20),
    ]);
    let advice = advise(&snapshot, &ExistingIndexes::new());
    assert_eq!(names(&advice), vec!["status_1_delivery_date_-1"]);
    let served: Vec<ShapeId> = advice.recommendations[0]
        .serves
        .iter()
        .map(|s| s.shape_id)
        .collect();
    assert_eq!(
        served,
        vec![by_status_sorted.id(), by_status.id()],
        "heaviest first"
    );
}

#[test]
fn existing_indexes_are_not_recommended_again_and_redundant_ones_are_listed() {
    let orders = Namespace::mongo("app", "orders");
    let snapshot = snapshot(vec![
        record(
            find(&orders, vec![eq("status")], vec![sort("delivery_date", 1)]),
            10,
        ),
        record(find(&orders, vec![eq("customer")], vec![]), 10),
    ]);
    let existing = ExistingIndexes::from([(
        orders.clone(),
        vec![
            spec(&orders, &[("_id", 1)], "_id_"),
            spec(&orders, &[("status", 1)], "status_1"),
            spec(
                &orders,
                &[("status", 1), ("delivery_date", -1), ("total", 1)],
                "sdt",
            ),
        ],
    )]);
    let advice = advise(&snapshot, &existing);
    assert_eq!(
        names(&advice),
        vec!["customer_1"],
        "(status, delivery_date) is a prefix of sdt"
    );
    assert_eq!(advice.drops.len(), 1);
    assert_eq!(advice.drops[0].name, "status_1");
    assert_eq!(advice.drops[0].reason, "prefix of sdt");
}

#[test]
fn recommendations_come_heaviest_first() {
    let orders = Namespace::mongo("app", "orders");
    let users = Namespace::mongo("app", "users");
    let mut light = record(find(&orders, vec![eq("status")], vec![]), 1_000);
    light.total_micros = 1_000_000;
    let mut heavy = record(find(&users, vec![eq("email")], vec![]), 10);
    heavy.total_micros = 9_000_000;
    let advice = advise(&snapshot(vec![light, heavy]), &ExistingIndexes::new());
    assert_eq!(names(&advice), vec!["email_1", "status_1"]);
    assert_eq!(advice.recommendations[0].total_ms(), 9_000.0);
}

#[test]
fn the_tenant_key_leads_every_index_of_its_collection() {
    let jobs = Namespace::postgres("app", "public", "jobs");
    let select = |filter: Vec<Predicate>, sort_keys| {
        let mut shape = find(&jobs, filter, sort_keys);
        shape.command = "select".into();
        shape
    };
    let is = |column| leaf(column, "=", OpClass::Eq);
    let after = |column| leaf(column, ">", OpClass::Range);
    let newest = || vec![sort("created_at", -1)];
    // (filter, sort, executions)
    let traffic = [
        (vec![is("status"), is("tenant_id")], vec![], 100),
        (vec![is("tenant_id"), after("queued_at")], vec![], 5),
        (vec![is("owner"), is("tenant_id")], newest(), 5),
    ];
    let snapshot = snapshot(
        traffic
            .into_iter()
            .map(|(filter, sort_keys, count)| record(select(filter, sort_keys), count))
            .collect(),
    );
    let advice = advise(&snapshot, &ExistingIndexes::new());
    assert_eq!(advice.recommendations.len(), 3);
    for recommendation in &advice.recommendations {
        assert_eq!(
            recommendation.index.keys[0].target,
            field("tenant_id"),
            "{}",
            recommendation.name
        );
    }
}

/// The `job_events` plan from the seeds, with the traffic it describes: the advice is
/// (job_id, timestamp) and (job_id, type, timestamp), not the single-column indexes it had.
#[test]
fn the_job_events_seed_plan() {
    let events = Namespace::postgres("app", "public", "job_events");
    let select = |filter: Vec<Predicate>, sort_keys: Vec<crate::shape::SortKey>, limit| {
        let mut shape = find(&events, filter, sort_keys);
        shape.command = "select".into();
        shape.limit = limit;
        shape
    };
    let job = || leaf("job_id", "=", OpClass::Eq);
    let of_type = || leaf("type", "=", OpClass::Eq);
    let after = || leaf("timestamp", ">", OpClass::Range);
    let by_time = || vec![sort("timestamp", 1)];
    // (filter, sort, has a limit, executions)
    let traffic = [
        (vec![job()], by_time(), true, 500),
        (vec![job(), of_type()], by_time(), true, 50),
        (vec![job(), after()], by_time(), false, 2_000),
        (vec![job(), of_type()], vec![], true, 30),
    ];
    let snapshot = snapshot(
        traffic
            .into_iter()
            .map(|(filter, sort_keys, limit, count)| {
                record(select(filter, sort_keys, limit), count)
            })
            .collect(),
    );
    let existing = ExistingIndexes::from([(
        events.clone(),
        vec![
            spec(&events, &[("id", 1)], "job_events_pkey"),
            spec(&events, &[("job_id", 1)], "job_events_job_id_idx"),
            spec(&events, &[("step_id", 1)], "job_events_step_id_idx"),
            spec(&events, &[("timestamp", 1)], "job_events_timestamp_idx"),
            spec(&events, &[("type", 1)], "job_events_type_idx"),
        ],
    )]);
    let advice = advise(&snapshot, &existing);
    let keys: Vec<Vec<&str>> = advice
        .recommendations
        .iter()
        .map(|r| r.index.keys.iter().map(|k| k.target.column()).collect())
        .collect();
    assert_eq!(
        keys,
        vec![
            vec!["job_id", "timestamp"],
            vec!["job_id", "type", "timestamp"]
        ]
    );
    assert_eq!(advice.recommendations[0].serves.len(), 2);
    assert_eq!(advice.recommendations[1].serves.len(), 2);
    assert!(advice.drops.is_empty());
}

/// An expression that hid a literal as a value (`coalesce(n, 0)` is recorded as
/// `coalesce("n", ?)`) is never a key, a partial term or a sort key: its statement would not
/// build. The rest of the shape is still served, and the notes name the expression.
#[test]
fn an_expression_that_hid_a_literal_is_never_recommended() {
    use crate::command::SqlProtocol;
    use crate::export::{render, Format};
    use crate::shape::sql::lower_text;

    let statements = [
        "SELECT * FROM items WHERE coalesce(n, 0) = $1 AND status = $2",
        "SELECT * FROM items WHERE coalesce(n, 0) > 5",
        "SELECT * FROM items WHERE kind = $1 ORDER BY coalesce(rank, 1), id LIMIT 5",
        "SELECT * FROM items WHERE coalesce(score, 0.5) IS NULL AND owner = $1",
        "SELECT * FROM items WHERE lower(email) = $1",
    ];
    let records = statements
        .iter()
        .flat_map(|sql| lower_text("app", sql, SqlProtocol::Extended).shapes)
        .map(|occurrence| {
            let mut record = record(occurrence.shape, 10);
            record.constants = occurrence.constants;
            record.normalized_sql = occurrence.normalized_sql;
            record
        })
        .collect();
    let advice = advise(&snapshot(records), &ExistingIndexes::new());
    let sql = render(&advice, Format::Sql);
    for recommendation in &advice.recommendations {
        let statement = crate::export::statement(recommendation);
        assert!(!statement.contains('?'), "a placeholder in {statement}");
        let hypothetical =
            crate::advise::engine::postgresql::ddl::hypothetical(&recommendation.index);
        assert!(
            !hypothetical.contains('?'),
            "a placeholder in {hypothetical}"
        );
    }
    let mut indexed = names(&advice);
    indexed.sort_unstable();
    assert_eq!(
        indexed,
        vec![
            "items_kind_idx",
            "items_lower_email_idx",
            "items_owner_idx",
            "items_status_idx"
        ],
        "the other leaves are still served: {sql}"
    );
    let noted: Vec<&String> = advice
        .notes
        .iter()
        .filter(|note| note.contains("does not keep"))
        .collect();
    assert_eq!(noted.len(), 3, "coalesce of n, rank and score: {noted:?}");
    assert!(
        noted
            .iter()
            .any(|note| note.starts_with(r#"coalesce("n", ?) on app.public.items"#)),
        "{noted:?}"
    );
}

/// The write cost is measured from the inserts' time, shared by the row and its indexes,
/// and reported: an index whose namespace is written far more than the index saves is left
/// out with its figures; one on a read-mostly namespace stays, with its cost in it.
#[test]
fn the_measured_write_cost_weighs_each_index() {
    use crate::snapshot::WriteRecord;

    let events = Namespace::postgres("app", "public", "events");
    let users = Namespace::postgres("app", "public", "users");
    let by_kind = find(&events, vec![eq("kind")], vec![]);
    let by_email = find(&users, vec![eq("email")], vec![]);
    // 10 ms of reads each.
    let mut snapshot = snapshot(vec![record(by_kind, 10), record(by_email, 10)]);
    // events: 20,000 rows inserted at 0.9 ms a row, shared by the row, its key and one
    // index: 0.3 ms an index entry, 6 s over the window. users: 10 rows at 0.2 ms, one key.
    let write = |namespace: &Namespace, inserts: u64, insert_micros: u64| WriteRecord {
        namespace: namespace.clone(),
        inserts,
        updates: 0,
        deletes: 0,
        insert_micros,
    };
    snapshot.writes = vec![write(&events, 20_000, 18_000_000), write(&users, 10, 2_000)];
    let existing = ExistingIndexes::from([
        (
            events.clone(),
            vec![
                spec(&events, &[("id", 1)], "events_pkey"),
                spec(&events, &[("at", 1)], "events_at_idx"),
            ],
        ),
        (
            users.clone(),
            vec![spec(&users, &[("id", 1)], "users_pkey")],
        ),
    ]);
    let settings = AdviceSettings::default();
    let mut advice = advise_with(&snapshot, &existing, &CatalogFacts::default(), &settings);
    let kind = advice
        .recommendations
        .iter()
        .find(|r| r.index.namespace == events)
        .expect("a candidate on events")
        .write_cost
        .clone();
    assert_eq!(kind.basis, WriteCostBasis::Measured);
    assert!((kind.per_write_ms - 0.3).abs() < 1e-9, "{kind:?}");
    assert_eq!(kind.writes, 20_000);
    rank::select(&mut advice, &settings);
    assert_eq!(names(&advice), vec!["users_email_idx"]);
    let email = &advice.recommendations[0];
    assert_eq!(email.write_cost.basis, WriteCostBasis::Measured);
    assert!((email.write_cost.per_write_ms - 0.1).abs() < 1e-9);
    assert!(
        (email.net_saving_ms - (10.0 - 1.0)).abs() < 1e-9,
        "{email:?}"
    );
    assert_eq!(
        advice.notes,
        vec![
            "1 candidate index(es) would cost more on writes than they save, left out: \
             events_kind_idx (saves 10.0 ms, 20000 writes × 0.300 ms cost 6000.0 ms)"
        ]
    );
}

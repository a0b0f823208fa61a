//! Before candidates: only user objects, and every column on the table that owns it.
//!
//! - **System objects** ([`EngineRules::is_system`]) are counted in the shapes, never
//!   advised on. On PostgreSQL, once a database's catalog was read, a table it does not
//!   list as a user table is not one either (an unqualified `pg_type` is the catalog's).
//! - **Unqualified columns of a join.** SQL lowering puts an unqualified column on the first
//!   table of the FROM list: it has no catalog. Here the catalog decides. A leaf whose column
//!   its table does not have moves to the one other table of the same statement (same
//!   normalised SQL) that has it; when no single table has it, it is left out of every key
//!   and named in the notes. A sort or select list that names such a column is dropped from
//!   the shape (no single index orders or covers it).
//! - **Fields no document has** (MongoDB, from the sample): never a key; named in the notes.
//! - **Expressions that hid a literal** (`coalesce("n", ?)`): never a key (the candidates
//!   leave them to the filter); named in the notes.
//!
//! The shapes keep their ids: a corrected shape is still the shape that was captured.
//!
//! [`EngineRules::is_system`]: super::EngineRules::is_system

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{Attribution, CatalogFacts};
use crate::shape::{Engine, Namespace, Predicate, ShapeId};
use crate::snapshot::Snapshot;

/// The option SQL lowering sets on every table of a FROM list that holds more than one.
const JOIN_OPTION: &str = "join";

/// The snapshot with system objects left out and columns attributed, and the notes.
pub fn attribute(snapshot: &Snapshot, facts: &CatalogFacts) -> (Snapshot, Vec<String>) {
    let mut out = snapshot.clone();
    let mut notes = BTreeSet::new();
    out.shapes
        .retain(|_, record| is_user_object(&record.shape.namespace, facts));
    attribute_joins(&mut out, facts, &mut notes);
    leave_out_absent_fields(&mut out, facts, &mut notes);
    note_unbuildable_expressions(&out, &mut notes);
    (out, notes.into_iter().collect())
}

/// Whether advice may cover `namespace`.
pub fn is_user_object(namespace: &Namespace, facts: &CatalogFacts) -> bool {
    if namespace.engine.rules().is_system(namespace) {
        return false;
    }
    if namespace.engine != Engine::Postgresql {
        return true;
    }
    // A database whose user tables were read: the table must be one of them.
    let read = facts
        .columns
        .0
        .keys()
        .any(|known| known.engine == namespace.engine && known.database == namespace.database);
    !read || facts.columns.knows(namespace)
}

/// A leaf that has to leave its shape: where it goes, if anywhere.
struct Move {
    from: ShapeId,
    column: String,
    to: Option<ShapeId>,
}

fn attribute_joins(snapshot: &mut Snapshot, facts: &CatalogFacts, notes: &mut BTreeSet<String>) {
    // The tables of each statement, from its shapes (one per table it reads).
    let mut statements: BTreeMap<&str, Vec<(ShapeId, &Namespace)>> = BTreeMap::new();
    for (id, record) in &snapshot.shapes {
        if let (true, Some(sql)) = (is_join(record), record.normalized_sql.as_deref()) {
            statements
                .entry(sql)
                .or_default()
                .push((*id, &record.shape.namespace));
        }
    }
    let mut moves = Vec::new();
    for (id, record) in &snapshot.shapes {
        if !is_join(record) || !facts.columns.knows(&record.shape.namespace) {
            continue;
        }
        let namespace = &record.shape.namespace;
        let tables = record
            .normalized_sql
            .as_deref()
            .and_then(|sql| statements.get(sql))
            .cloned()
            .unwrap_or_default();
        let namespaces: Vec<Namespace> = tables.iter().map(|(_, ns)| (*ns).clone()).collect();
        let mut columns = filtered_or_sorted(&record.shape);
        columns.extend(record.shape.projection.iter().cloned());
        for column in columns {
            if facts.columns.has(namespace, &column) != Some(false) {
                continue;
            }
            let to = match facts.columns.owner(&column, &namespaces) {
                Attribution::Owner(owner) => tables
                    .iter()
                    .find(|(_, ns)| *ns == owner)
                    .map(|(shape, _)| *shape),
                Attribution::Ambiguous | Attribution::Unknown => None,
            };
            if to.is_none() {
                notes.insert(format!(
                    "column {column} of a join with {namespace} could not be attributed to one table: left out of every key"
                ));
            }
            moves.push(Move {
                from: *id,
                column,
                to,
            });
        }
    }
    for Move { from, column, to } in moves {
        let Some(record) = snapshot.shapes.get_mut(&from) else {
            continue;
        };
        // The shape is shared with the live store until it is changed here.
        let shape = std::sync::Arc::make_mut(&mut record.shape);
        let moved = take_leaves(&mut shape.filter, &column);
        let constants: Vec<_> = record
            .constants
            .iter()
            .filter(|bound| bound.target.column() == column)
            .cloned()
            .collect();
        record
            .constants
            .retain(|bound| bound.target.column() != column);
        if shape.sort.iter().any(|k| k.target.column() == column) {
            shape.sort.clear();
        }
        if shape.projection.contains(&column) {
            // Covering columns must be this table's: without them, no index-only scan.
            shape.projection.clear();
        }
        let Some(owner) = to.and_then(|to| snapshot.shapes.get_mut(&to)) else {
            continue;
        };
        if !moved.is_empty() {
            let owner_shape = std::sync::Arc::make_mut(&mut owner.shape);
            let mut conjuncts = match std::mem::replace(&mut owner_shape.filter, Predicate::all()) {
                Predicate::And(children) => children,
                other => vec![other],
            };
            conjuncts.extend(moved);
            conjuncts.sort();
            conjuncts.dedup();
            owner_shape.filter = Predicate::And(conjuncts);
        }
        owner.constants.extend(constants);
        owner.constants.sort();
        owner.constants.dedup();
    }
}

fn is_join(record: &crate::snapshot::ShapeRecord) -> bool {
    record.shape.options.iter().any(|o| o == JOIN_OPTION)
}

/// The columns or fields a shape filters or sorts on.
fn filtered_or_sorted(shape: &crate::shape::Shape) -> BTreeSet<String> {
    let mut columns = leaf_columns(&shape.filter);
    columns.extend(shape.sort.iter().map(|k| k.target.column().to_owned()));
    columns
}

/// The columns or fields a filter tests, `$elemMatch` paths joined in.
fn leaf_columns(predicate: &Predicate) -> BTreeSet<String> {
    predicate
        .targets()
        .into_iter()
        .map(|target| target.column().to_owned())
        .collect()
}

/// Removes the top-level leaves on `column` and returns them; a nested condition that
/// mentions it (an OR, a NOT) is removed whole: the filter only gets weaker.
fn take_leaves(filter: &mut Predicate, column: &str) -> Vec<Predicate> {
    let mentions = |predicate: &Predicate| leaf_columns(predicate).contains(column);
    match filter {
        Predicate::And(children) => {
            let mut taken = Vec::new();
            children.retain(|child| match child {
                Predicate::Leaf(leaf) if leaf.target.column() == column => {
                    taken.push(child.clone());
                    false
                }
                other => !mentions(other),
            });
            taken
        }
        Predicate::Leaf(leaf) if leaf.target.column() == column => {
            vec![std::mem::replace(filter, Predicate::all())]
        }
        other if mentions(other) => {
            *other = Predicate::all();
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn leave_out_absent_fields(
    snapshot: &mut Snapshot,
    facts: &CatalogFacts,
    notes: &mut BTreeSet<String>,
) {
    for record in snapshot.shapes.values_mut() {
        let Some(statistics) = facts.statistics.get(&record.shape.namespace) else {
            continue;
        };
        let Some(sampled) = statistics.sample_size.filter(|n| *n > 0) else {
            continue;
        };
        let columns = filtered_or_sorted(&record.shape);
        for column in columns {
            if column == "_id" || !statistics.is_absent(&column) {
                continue;
            }
            notes.insert(format!(
                "{column} is in none of {sampled} sampled documents of {}: left out of its keys",
                record.shape.namespace
            ));
            let shape = std::sync::Arc::make_mut(&mut record.shape);
            take_leaves(&mut shape.filter, &column);
            shape.sort.retain(|k| k.target.column() != column);
        }
    }
}

/// Expressions an index cannot be written on as recorded ([`EngineRules::builds_key`]): the
/// candidates leave them to the filter; the notes say so, once per expression and table.
///
/// [`EngineRules::builds_key`]: super::EngineRules::builds_key
fn note_unbuildable_expressions(snapshot: &Snapshot, notes: &mut BTreeSet<String>) {
    for record in snapshot.shapes.values() {
        let shape = &record.shape;
        let rules = shape.namespace.engine.rules();
        let targets = shape
            .filter
            .targets()
            .into_iter()
            .chain(shape.sort.iter().map(|key| key.target.clone()));
        for target in targets {
            if let (crate::shape::Target::Expression { text, .. }, false) =
                (&target, rules.builds_key(&target))
            {
                notes.insert(format!(
                    "{text} on {} stands for a value indextap does not keep (`?`): no index is proposed on it; write one by hand with the value",
                    shape.namespace
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advise::candidates::tests::{eq, leaf, record, snapshot};
    use crate::catalog::{FieldStatistics, NamespaceStatistics};
    use crate::shape::{OpClass, Shape};

    fn table(name: &str) -> Namespace {
        Namespace::postgres("tpcc", "public", name)
    }

    /// Facts of a collection whose `size` sampled documents all have `field` only, with
    /// `distinct` values.
    fn sampled(namespace: Namespace, size: u32, field: &str, distinct: f64) -> CatalogFacts {
        let mut facts = CatalogFacts::default();
        facts.statistics.insert(
            namespace,
            NamespaceStatistics {
                rows: f64::from(size),
                sample_size: Some(size.into()),
                fields: BTreeMap::from([(field.to_owned(), FieldStatistics::uniform(distinct))]),
            },
        );
        facts
    }

    fn joined(shape: Shape, sql: &str) -> crate::snapshot::ShapeRecord {
        let mut shape = shape;
        shape.options = vec![JOIN_OPTION.to_owned()];
        let mut record = record(shape, 3);
        record.normalized_sql = Some(sql.to_owned());
        record
    }

    #[test]
    fn unqualified_columns_move_to_their_table() {
        let sql = "SELECT c_discount, w_tax FROM customer, warehouse WHERE w_id = $1 AND c_w_id = w_id AND c_id = $2";
        let mut customer = Shape::new(table("customer"), "select");
        customer.filter = Predicate::And(vec![eq("c_id"), eq("w_id"), eq("c_w_id")]);
        customer.projection = vec!["c_discount".to_owned(), "w_tax".to_owned()];
        let warehouse = Shape::new(table("warehouse"), "select");
        let snapshot = snapshot(vec![joined(customer, sql), joined(warehouse, sql)]);
        let mut facts = CatalogFacts::default();
        facts.columns.insert(
            table("customer"),
            ["c_id", "c_w_id", "c_discount"].map(str::to_owned),
        );
        facts
            .columns
            .insert(table("warehouse"), ["w_id", "w_tax"].map(str::to_owned));
        let (attributed, notes) = attribute(&snapshot, &facts);
        assert!(notes.is_empty(), "{notes:?}");
        let by_table = |name: &str| {
            attributed
                .shapes
                .values()
                .find(|r| r.shape.namespace == table(name))
                .expect("the shape")
                .shape
                .clone()
        };
        assert_eq!(
            by_table("customer").filter,
            Predicate::And(vec![eq("c_id"), eq("c_w_id")])
        );
        assert!(by_table("customer").projection.is_empty());
        assert_eq!(
            by_table("warehouse").filter,
            Predicate::And(vec![eq("w_id")])
        );
    }

    #[test]
    fn an_unattributable_column_is_a_note() {
        let sql = "SELECT 1 FROM a, b WHERE x = $1";
        let mut first = Shape::new(table("a"), "select");
        first.filter = Predicate::And(vec![eq("x"), leaf("y", ">", OpClass::Range)]);
        let snapshot = snapshot(vec![joined(first, sql)]);
        let mut facts = CatalogFacts::default();
        facts.columns.insert(table("a"), ["y"].map(str::to_owned));
        let (attributed, notes) = attribute(&snapshot, &facts);
        let shape = &attributed.shapes.values().next().expect("kept").shape;
        assert_eq!(
            shape.filter,
            Predicate::And(vec![leaf("y", ">", OpClass::Range)])
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("column x of a join with tpcc.public.a"));
    }

    #[test]
    fn system_and_unlisted_tables_are_left_out() {
        let catalog = Shape::new(
            Namespace::postgres("app", "pg_catalog", "pg_class"),
            "select",
        );
        let unlisted = Shape::new(Namespace::postgres("app", "public", "pg_type"), "select");
        let user = Shape::new(Namespace::postgres("app", "public", "orders"), "select");
        let local = Shape::new(Namespace::mongo("local", "startup_log"), "find");
        let snapshot = snapshot(vec![
            record(catalog, 1),
            record(unlisted, 1),
            record(user, 1),
            record(local, 1),
        ]);
        let mut facts = CatalogFacts::default();
        facts.columns.insert(
            Namespace::postgres("app", "public", "orders"),
            ["id".to_owned()],
        );
        let (attributed, _) = attribute(&snapshot, &facts);
        let kept: Vec<String> = attributed
            .shapes
            .values()
            .map(|r| r.shape.namespace.to_string())
            .collect();
        assert_eq!(kept, vec!["app.public.orders"]);
    }

    /// An `$elemMatch` on an array of scalars tests the array field itself, and `$text`
    /// is no field at all: a sample that counted `tags` must keep both (they once became
    /// the field "" and `$text`, which no sample counts, and were taken out as absent).
    #[test]
    fn elem_match_and_text_leaves_are_not_taken_for_absent_fields() {
        let posts = Namespace::mongo("app", "posts");
        let mut shape = Shape::new(posts.clone(), "find");
        shape.filter = Predicate::And(vec![
            Predicate::ElemMatch {
                path: "tags".to_owned(),
                predicate: Box::new(Predicate::And(vec![eq("")])),
            },
            leaf("$text", "$text", OpClass::Text),
        ]);
        let before = shape.filter.clone();
        let snapshot = snapshot(vec![record(shape, 2)]);
        let facts = sampled(posts, 10, "tags", 4.0);
        let (attributed, notes) = attribute(&snapshot, &facts);
        assert!(notes.is_empty(), "{notes:?}");
        let shape = &attributed.shapes.values().next().expect("kept").shape;
        assert_eq!(shape.filter, before);
    }

    #[test]
    fn a_field_no_sampled_document_has_is_never_a_key() {
        let customers = Namespace::mongo("app", "customer");
        let mut shape = Shape::new(customers.clone(), "find");
        shape.filter = Predicate::And(vec![eq("d_id")]);
        shape.sort = vec![crate::advise::candidates::tests::sort("updated_at", -1)];
        let snapshot = snapshot(vec![record(shape, 2)]);
        let facts = sampled(customers, 100, "d_id", 10.0);
        let (attributed, notes) = attribute(&snapshot, &facts);
        let shape = &attributed.shapes.values().next().expect("kept").shape;
        assert!(shape.sort.is_empty());
        assert_eq!(
            notes,
            vec!["updated_at is in none of 100 sampled documents of app.customer: left out of its keys"]
        );
    }
}

//! Shapes: a query with its values taken out.
//!
//! Both engines lower into this one model, so everything downstream (aggregation, ESR,
//! consolidation, ranking) is written once. A shape keeps field names, operators, value
//! *types*, the sort with its directions, and whether a limit or skip is present. It never
//! keeps a value from the traffic.
//!
//! The only non-type facts a shape may carry are [`Constant`]s: the operand of `$exists`,
//! the type name of `$type`, a boolean written into SQL text, or an enum-like status list
//! written into SQL text. Those are code, not data, and they are what partial indexes are
//! built from. They are kept beside the shape, not in its id, so that executions with
//! different constants are still one shape.
//!
//! ## Layout
//! - this file: the model ([`Shape`], [`Predicate`], [`Leaf`], [`OpClass`], [`Lowering`]).
//! - `namespace`: [`Engine`] and [`Namespace`], where a shape runs.
//! - `describe`: a shape as one readable line ([`Shape::describe`]).
//! - `operator`, `command`, `rejection`: the typed words of the model ([`Operator`],
//!   [`Command`], [`Rejection`]), each serialised as the name it has always had in the JSON.
//! - [`mongo`]: MongoDB command → shapes (the 8.0 query-shape rules).
//! - [`sql`]: SQL text → shapes (sqlparser, PostgreSQL dialect), with an LRU cache.
//! - [`id`]: the stable shape id, a hash of the canonical form.
//! - [`footprint`]: what a shape (or a lowering) holds on the heap.
//! - `key`: the structural key the aggregate files a shape under, kept per occurrence.

mod command;
mod describe;
pub mod footprint;
pub mod id;
mod key;
pub mod mongo;
mod namespace;
mod operator;
mod rejection;
pub mod sql;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::command::Request;
pub use command::Command;
pub use id::ShapeId;
pub use key::structural_key;
pub use namespace::{Engine, Namespace};
pub use operator::{MongoOperator, Operator, SqlOperator};
pub use rejection::Rejection;

/// How an operator can use an index. This is what ESR reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    /// `$eq`, `=`.
    Eq,
    /// `$in`, `IN (...)`, `= ANY($1)`: equality for filtering, but not sort-preserving.
    In,
    /// `$gt`/`$gte`/`$lt`/`$lte`, `<`, `>`, `BETWEEN`.
    Range,
    /// Anchored prefix match: `/^abc/`, `LIKE 'abc%'`. Bounded like a range.
    Prefix,
    /// Unanchored match: `/abc/`, `LIKE '%abc%'`, `ILIKE`. Needs a trigram index.
    Infix,
    /// `IS NULL`, `{f: null}`.
    IsNull,
    /// `IS NOT NULL`.
    NotNull,
    /// `$exists`.
    Exists,
    /// `$type`.
    Type,
    /// `$ne`, `$nin`, `<>`, `NOT IN`: rarely selective.
    Ne,
    /// `$text`, full-text search.
    Text,
    /// jsonb `@>`.
    JsonContains,
    /// `$expr`, `$where`, functions the advisor cannot index.
    NotIndexable,
}

/// The type a literal had. Two executions with different values of one type are one shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ValueType {
    /// A string.
    String,
    /// Any number (int32, int64, double, decimal128, SQL numeric).
    Number,
    /// A boolean.
    Bool,
    /// Null.
    Null,
    /// A date or timestamp.
    Date,
    /// A MongoDB ObjectId.
    ObjectId,
    /// An embedded document or JSON object.
    Object,
    /// An array (after `$in` arity is dropped, the element type is kept instead).
    Array,
    /// A regular expression.
    Regex,
    /// Binary data (UUIDs included).
    BinData,
    /// A bound parameter whose type the text does not tell (`$1`, `?`).
    Param,
    /// Anything else (MinKey, MaxKey, JavaScript, ...).
    Other,
    /// No operand (`IS NULL`, `$exists` carries its operand as a [`Constant`]).
    None,
}

/// What a leaf tests: a field, or an expression over one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A (possibly dotted) field or column name.
    Field(String),
    /// A function of a column, e.g. `lower(email)`, `date(created_at)`, `payload->>'kind'`.
    /// `text` is the canonical SQL of the expression, with names only.
    Expression {
        /// Canonical expression text, e.g. `lower("email")`.
        text: String,
        /// The column inside it.
        column: String,
    },
}

impl Target {
    /// The target as written: the field or column name, or the expression's canonical text.
    pub fn text(&self) -> &str {
        match self {
            Target::Field(name) => name,
            Target::Expression { text, .. } => text,
        }
    }

    /// The column or field underneath, for expressions the column they wrap.
    pub fn column(&self) -> &str {
        match self {
            Target::Field(name) => name,
            Target::Expression { column, .. } => column,
        }
    }

    /// The target of a leaf inside an `$elemMatch` on `path`, as seen from the document.
    pub fn under(&self, path: &str) -> Target {
        match self {
            Target::Field(name) if !path.is_empty() => Target::Field(join_path(path, name)),
            other => other.clone(),
        }
    }
}

/// One comparison: a target, an operator, and the type of the operand.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Leaf {
    /// What is tested.
    pub target: Target,
    /// The operator as written, normalised (`$eq`, `$gte`, `=`, `LIKE`, `IS NULL`, ...).
    pub operator: Operator,
    /// How an index can use it.
    pub class: OpClass,
    /// The operand's type.
    pub value_type: ValueType,
}

/// A filter with values taken out. Implicit `$and` and `$eq` are explicit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicate {
    /// Every child holds.
    And(Vec<Predicate>),
    /// Any child holds: each branch needs its own index.
    Or(Vec<Predicate>),
    /// No child holds: not indexable.
    Nor(Vec<Predicate>),
    /// `NOT (...)`: not indexable.
    Not(Box<Predicate>),
    /// `{path: {$elemMatch: {...}}}`: the inner predicate applies to one array element.
    ElemMatch {
        /// The array field.
        path: String,
        /// The predicate on its elements, with paths relative to the element.
        predicate: Box<Predicate>,
    },
    /// A single comparison.
    Leaf(Leaf),
}

impl Predicate {
    /// The empty filter.
    pub fn all() -> Self {
        Predicate::And(Vec::new())
    }

    /// Whether the filter matches everything.
    pub fn is_empty(&self) -> bool {
        matches!(self, Predicate::And(children) if children.is_empty())
    }

    /// Every target the filter tests, with the paths of `$elemMatch` joined in
    /// (`{tags: {$elemMatch: {$eq: ..}}}` tests `tags`, `{items: {$elemMatch: {sku: ..}}}`
    /// tests `items.sku`): the fields as an index would key them.
    pub fn targets(&self) -> std::collections::BTreeSet<Target> {
        fn walk(predicate: &Predicate, path: &str, into: &mut std::collections::BTreeSet<Target>) {
            match predicate {
                Predicate::Leaf(leaf) => {
                    into.insert(leaf.target.under(path));
                }
                Predicate::And(children) | Predicate::Or(children) | Predicate::Nor(children) => {
                    children.iter().for_each(|child| walk(child, path, into));
                }
                Predicate::Not(child) => walk(child, path, into),
                Predicate::ElemMatch {
                    path: inner,
                    predicate,
                } => walk(predicate, &join_path(path, inner), into),
            }
        }
        let mut targets = std::collections::BTreeSet::new();
        walk(self, "", &mut targets);
        targets
    }
}

/// `path.inner`, either side possibly empty (an `$elemMatch` on scalars tests the array
/// field itself).
pub fn join_path(path: &str, inner: &str) -> String {
    match (path.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_owned(),
        (false, true) => path.to_owned(),
        (false, false) => format!("{path}.{inner}"),
    }
}

/// A sort key with its direction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SortKey {
    /// What is sorted on.
    pub target: Target,
    /// 1 ascending, -1 descending.
    pub direction: i8,
    /// PostgreSQL `NULLS FIRST` (true) / `NULLS LAST` (false) when written explicitly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nulls_first: Option<bool>,
}

/// A query with its values taken out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// Where it runs.
    pub namespace: Namespace,
    /// The command or statement kind: `find`, `aggregate`, `count`, `distinct`, `update`,
    /// `delete`, `findAndModify`, `select`, ...
    pub command: Command,
    /// The filter (WHERE, `filter`, `q`, the leading `$match`).
    pub filter: Predicate,
    /// The sort, in the query's order.
    #[serde(default)]
    pub sort: Vec<SortKey>,
    /// Whether a limit is present (its value is not kept).
    #[serde(default)]
    pub limit: bool,
    /// Whether a skip/offset is present.
    #[serde(default)]
    pub skip: bool,
    /// Projected fields / select-list columns, sorted; empty means "all".
    #[serde(default)]
    pub projection: Vec<String>,
    /// SQL GROUP BY columns.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Command options that change what the query does but not how it is indexed:
    /// `multi`, `upsert`, `distinct:<key>`, `join`, ... Sorted, names only.
    #[serde(default)]
    pub options: Vec<String>,
}

impl Shape {
    /// A shape with an empty filter and nothing else, to be filled in by a lowering.
    pub fn new(namespace: Namespace, command: impl Into<Command>) -> Self {
        Self {
            namespace,
            command: command.into(),
            filter: Predicate::all(),
            sort: Vec::new(),
            limit: false,
            skip: false,
            projection: Vec::new(),
            group_by: Vec::new(),
            options: Vec::new(),
        }
    }

    /// The canonical form: deterministic JSON of the shape. Its hash is the [`ShapeId`].
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("a shape always serialises")
    }

    /// The stable id of this shape.
    pub fn id(&self) -> ShapeId {
        ShapeId::of(self)
    }

    /// The shape as one readable line: names, operators and value types, never values.
    pub fn describe(&self) -> String {
        describe::shape(self)
    }
}

/// A non-data constant that a leaf carried in one execution. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Constant {
    /// `{f: {$exists: true|false}}`.
    Exists(bool),
    /// `{f: {$type: "date"}}`: a BSON type name or number, never a value.
    Type(String),
    /// A boolean written into SQL text: `is_active = true`.
    Bool(bool),
    /// A list of enum-like tokens written into SQL text: `status IN ('QUEUED','PENDING')`.
    /// Only short identifier-like literals qualify; anything else is never kept.
    Tokens(Vec<String>),
    /// A token list not yet confirmed as code: the aggregate keeps only this digest of it
    /// until enough executions carried the same list (see `aggregate`), because a single
    /// upper-case literal (`last_name = 'SMITH'`, interpolated by an ORM) may be data.
    Digest(u64),
}

/// A constant bound to the leaf it belongs to, by the leaf's target and operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BoundConstant {
    /// The leaf's target.
    pub target: Target,
    /// The leaf's operator.
    pub operator: Operator,
    /// The constant it carried.
    pub constant: Constant,
}

/// One shape as it occurred in one execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeOccurrence {
    /// The shape.
    pub shape: Shape,
    /// The partial-index constants this execution carried, sorted.
    pub constants: Vec<BoundConstant>,
    /// SQL only: the statement with literals and parameters replaced by `$n` (see
    /// [`sql`]), for EXPLAIN. Never holds a value.
    pub normalized_sql: Option<String>,
    /// The shape's [`structural_key`], once asked for.
    pub(crate) key: key::KeyMemo,
}

impl ShapeOccurrence {
    /// The shape's [`structural_key`], computed once per occurrence: a cached SQL lowering
    /// is recorded again and again.
    pub fn key(&self) -> u128 {
        self.key.get(&self.shape)
    }
}

impl From<Shape> for ShapeOccurrence {
    fn from(shape: Shape) -> Self {
        Self {
            shape,
            constants: Vec::new(),
            normalized_sql: None,
            key: key::KeyMemo::default(),
        }
    }
}

/// What kind of write a command performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// insert, INSERT, COPY FROM.
    Insert,
    /// update, findAndModify with update, UPDATE.
    Update,
    /// delete, findAndModify with remove, DELETE.
    Delete,
}

/// Writes against one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Where.
    pub namespace: Namespace,
    /// What kind.
    pub kind: WriteKind,
    /// How many statements or documents (an insert of 100 documents counts 100).
    pub count: u64,
}

/// Everything one command lowers into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lowering {
    /// The read shapes (an update with three statements gives three).
    pub shapes: Vec<ShapeOccurrence>,
    /// The write load.
    pub writes: Vec<Write>,
    /// For `getMore`: the cursor continued. Its time and documents count toward the shape
    /// that opened the cursor.
    pub continues_cursor: Option<i64>,
    /// For `killCursors`: cursors the client closed.
    pub closes_cursors: Vec<i64>,
    /// Why nothing could be made of the command, when that is an error worth counting.
    /// `None` for commands that are simply not queries (hello, ping, SCRAM).
    pub rejected: Option<Rejection>,
}

impl Lowering {
    /// Nothing but a rejection, for `reason`.
    pub fn rejected_as(reason: Rejection) -> Self {
        Self {
            rejected: Some(reason),
            ..Self::default()
        }
    }
}

/// Lower one request into shapes and writes.
///
/// `sql_cache` makes a repeated SQL text cost one hash lookup (and, in [`lower_shared`], a
/// repeated MongoDB `find` / `count` structure).
pub fn lower(request: &Request, sql_cache: &sql::SqlCache) -> Lowering {
    match request {
        Request::Mongo(command) => mongo::lower(command),
        Request::Sql(command) => sql_cache.lower(command),
    }
}

/// [`lower`] without copying a cached SQL lowering: the hot path of the analysis thread,
/// paired with [`Aggregator::record_shared`](crate::aggregate::Aggregator::record_shared).
pub fn lower_shared(request: &Request, sql_cache: &sql::SqlCache) -> std::sync::Arc<Lowering> {
    match request {
        Request::Mongo(command) => mongo::cache::lower_shared(command, sql_cache),
        Request::Sql(command) => sql_cache.lower_shared(command),
    }
}

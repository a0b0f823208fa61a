//! Statements → shapes and writes: the walk over statements, queries and FROM lists.
//!
//! Every query level (the statement's, each CTE's, each derived table's, each subquery's)
//! gets its own [`Frame`] and yields one shape per base table it reads. A CTE name or a
//! derived table in a FROM list is a table without indexes: its columns resolve, and its
//! conditions are dropped. Subqueries in expressions are lowered as queries of their own; to
//! the enclosing level `x IN (SELECT ...)` is not indexable and `EXISTS (...)` says nothing.
//!
//! ## Layout
//! - this file: [`Lowerer`], statements, queries, FROM lists and joins.
//! - `clauses`: the select list, ORDER BY, GROUP BY, and the subqueries inside them.

use sqlparser::ast::{
    CopySource, Delete, Expr, FromTable, Insert, JoinConstraint, JoinOperator, LimitClause,
    OrderByExpr, OrderByKind, Query, Select, SetExpr, Statement, TableFactor, TableObject,
    TableWithJoins, Update, UpdateTableFromKind,
};

use super::classify::Classifier;
use super::constants::Kept;
use super::frame::{Filters, Frame};
use super::names::{self, fold, TableRef};
use super::predicate::{Cond, Owned, JOIN_OPERATOR};
use crate::command::SqlProtocol;
use crate::shape::{
    Leaf, Namespace, OpClass, ShapeOccurrence, Target, ValueType, Write, WriteKind,
};

/// Deepest nesting of queries (CTEs, derived tables, subqueries) walked. sqlparser's own
/// limit is lower; this guards the walk on its own.
const MAX_NESTING: usize = 64;

/// Lowers the statements of one text, one at a time.
pub(super) struct Lowerer<'d> {
    database: &'d str,
    protocol: SqlProtocol,
    /// Literals the normalized statement keeps as written.
    pub(super) kept: Kept,
    /// Shapes found so far in the current statement.
    pub(super) shapes: Vec<ShapeOccurrence>,
    /// Writes found so far.
    pub(super) writes: Vec<Write>,
    /// Whether something could not be made sense of.
    pub(super) unsupported: bool,
    /// CTE names visible at this point of the walk.
    ctes: Vec<String>,
    nesting: usize,
}

/// ORDER BY, LIMIT and OFFSET of a query, applied to its SELECT.
pub(super) struct Modifiers<'q> {
    pub(super) order_by: &'q [OrderByExpr],
    pub(super) limit: bool,
    pub(super) skip: bool,
}

impl<'q> Modifiers<'q> {
    fn of(query: &'q Query) -> Self {
        let order_by = match &query.order_by {
            Some(order_by) => match &order_by.kind {
                OrderByKind::Expressions(keys) => keys.as_slice(),
                OrderByKind::All(_) => &[],
            },
            None => &[],
        };
        let (limit, skip) = match &query.limit_clause {
            Some(LimitClause::LimitOffset { limit, offset, .. }) => {
                (limit.is_some(), offset.is_some())
            }
            Some(LimitClause::OffsetCommaLimit { .. }) => (true, true),
            None => (false, false),
        };
        Self {
            order_by,
            limit: limit || query.fetch.is_some(),
            skip,
        }
    }
}

impl<'d> Lowerer<'d> {
    /// A lowerer for statements run against `database`.
    pub(super) fn new(database: &'d str, protocol: SqlProtocol) -> Self {
        Self {
            database,
            protocol,
            kept: Kept::default(),
            shapes: Vec::new(),
            writes: Vec::new(),
            unsupported: false,
            ctes: Vec::new(),
            nesting: 0,
        }
    }

    /// Lower one statement. Statements that read or write no table (SET, BEGIN, SHOW, DDL)
    /// lower to nothing.
    pub(super) fn statement(&mut self, statement: &Statement) {
        match statement {
            Statement::Query(query) => self.query(query),
            Statement::Insert(insert) => self.insert(insert),
            Statement::Update(update) => self.update(update),
            Statement::Delete(delete) => self.delete(delete),
            Statement::Copy { source, to, .. } => self.copy(source, *to),
            // MERGE reads and writes in ways a shape does not describe.
            Statement::Merge(_) => self.unsupported = true,
            _ => {}
        }
    }

    /// Lower a query and everything nested in it.
    pub(super) fn query(&mut self, query: &Query) {
        if self.nesting >= MAX_NESTING {
            self.unsupported = true;
            return;
        }
        self.nesting += 1;
        let visible = self.ctes.len();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                // Named before its body is walked: a recursive CTE reads itself.
                self.ctes.push(fold(&cte.alias.name));
                self.query(&cte.query);
            }
        }
        let modifiers = Modifiers::of(query);
        self.set_expr(&query.body, Some(&modifiers));
        self.ctes.truncate(visible);
        self.nesting -= 1;
    }

    fn set_expr(&mut self, body: &SetExpr, modifiers: Option<&Modifiers<'_>>) {
        match body {
            SetExpr::Select(select) => self.select(select, modifiers),
            SetExpr::Query(query) => self.query(query),
            // The ORDER BY and LIMIT of a UNION apply to its result, not to either side.
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, None);
                self.set_expr(right, None);
            }
            SetExpr::Insert(statement)
            | SetExpr::Update(statement)
            | SetExpr::Delete(statement) => self.statement(statement),
            SetExpr::Merge(_) => self.unsupported = true,
            SetExpr::Values(_) | SetExpr::Table(_) => {}
        }
    }

    fn select(&mut self, select: &Select, modifiers: Option<&Modifiers<'_>>) {
        let mut frame = Frame::default();
        let mut on = Vec::new();
        for item in &select.from {
            self.from_item(&mut frame, item, &mut on);
        }
        frame.seal_scope();
        self.conditions(&mut frame, select.selection.as_ref(), on);
        self.subqueries(select.having.iter());
        self.select_list(&mut frame, select);
        self.group_by(&mut frame, select);
        if let Some(modifiers) = modifiers {
            self.order_by(&mut frame, select, modifiers.order_by);
            frame.limit = modifiers.limit;
            frame.skip = modifiers.skip;
        }
        if matches!(
            select.distinct,
            Some(sqlparser::ast::Distinct::Distinct | sqlparser::ast::Distinct::On(_))
        ) {
            frame.options.push("distinct".to_owned());
        }
        let shapes = frame.shapes("select");
        self.shapes.extend(shapes);
    }

    fn update(&mut self, update: &Update) {
        let mut frame = Frame::default();
        let mut on = Vec::new();
        self.from_item(&mut frame, &update.table, &mut on);
        if let Some(
            UpdateTableFromKind::BeforeSet(tables) | UpdateTableFromKind::AfterSet(tables),
        ) = &update.from
        {
            for item in tables {
                self.from_item(&mut frame, item, &mut on);
            }
        }
        frame.seal_scope();
        self.conditions(&mut frame, update.selection.as_ref(), on);
        self.subqueries(
            update
                .assignments
                .iter()
                .map(|assignment| &assignment.value),
        );
        self.write_first(&frame, WriteKind::Update);
        let shapes = frame.shapes("update");
        self.shapes.extend(shapes);
    }

    fn delete(&mut self, delete: &Delete) {
        let mut frame = Frame::default();
        let mut on = Vec::new();
        let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) = &delete.from;
        for item in tables.iter().chain(delete.using.iter().flatten()) {
            self.from_item(&mut frame, item, &mut on);
        }
        frame.seal_scope();
        self.conditions(&mut frame, delete.selection.as_ref(), on);
        self.write_first(&frame, WriteKind::Delete);
        let shapes = frame.shapes("delete");
        self.shapes.extend(shapes);
    }

    fn insert(&mut self, insert: &Insert) {
        let mut rows = 1;
        if let Some(source) = &insert.source {
            match source.body.as_ref() {
                SetExpr::Values(values) => rows = values.rows.len().max(1),
                _ => self.query(source),
            }
        }
        if let TableObject::TableName(name) = &insert.table {
            if let Some(namespace) = self.namespace(name) {
                self.writes.push(Write {
                    namespace,
                    kind: WriteKind::Insert,
                    count: u64::try_from(rows).unwrap_or(u64::MAX),
                });
            }
        }
    }

    /// `COPY t FROM ...` writes; `COPY (SELECT ...) TO ...` reads. A COPY that reached the
    /// server through the copy sub-protocol is a write whatever its text says.
    fn copy(&mut self, source: &CopySource, to: bool) {
        match source {
            CopySource::Table { table_name, .. } if !to || self.protocol == SqlProtocol::Copy => {
                if let Some(namespace) = self.namespace(table_name) {
                    self.writes.push(Write {
                        namespace,
                        kind: WriteKind::Insert,
                        count: 1,
                    });
                }
            }
            CopySource::Query(query) => self.query(query),
            CopySource::Table { .. } => {}
        }
    }

    fn namespace(&self, name: &sqlparser::ast::ObjectName) -> Option<Namespace> {
        let parts = names::parts(name)?;
        TableRef::table(self.database, &parts, None).namespace
    }

    fn write_first(&mut self, frame: &Frame, kind: WriteKind) {
        if let Some(namespace) = frame.scope.tables.first().and_then(|t| t.namespace.clone()) {
            self.writes.push(Write {
                namespace,
                kind,
                count: 1,
            });
        }
    }

    /// Classify WHERE and the ON clauses gathered from the FROM list, once the scope is
    /// complete, and lower the subqueries inside them.
    fn conditions<'a>(
        &mut self,
        frame: &mut Frame,
        selection: Option<&'a Expr>,
        on: Vec<(Joined<'a>, Filters)>,
    ) {
        let mut conditions = Vec::new();
        {
            let mut classifier = Classifier {
                scope: &frame.scope,
                kept: &mut self.kept,
            };
            if let Some(selection) = selection {
                conditions.push((classifier.cond(selection), Filters::All));
            }
            for (joined, filters) in &on {
                match joined {
                    Joined::On(expr) => conditions.push((classifier.cond(expr), filters.clone())),
                    Joined::Using {
                        left,
                        right,
                        column,
                    } => conditions.push((
                        Cond::And(vec![join_leaf(*left, column), join_leaf(*right, column)]),
                        Filters::All,
                    )),
                }
            }
        }
        frame.conditions = conditions;
        let ons = on.iter().filter_map(|(joined, _)| match joined {
            Joined::On(expr) => Some(*expr),
            Joined::Using { .. } => None,
        });
        self.subqueries(selection.into_iter().chain(ons));
    }

    /// Add one FROM entry and its joins to the scope; ON clauses are kept for later.
    fn from_item<'a>(
        &mut self,
        frame: &mut Frame,
        item: &'a TableWithJoins,
        on: &mut Vec<(Joined<'a>, Filters)>,
    ) {
        let first = frame.scope.tables.len();
        self.relation(frame, &item.relation, on);
        for join in &item.joins {
            let start = frame.scope.tables.len();
            self.relation(frame, &join.relation, on);
            let end = frame.scope.tables.len();
            let Some((constraint, filters)) =
                join_filters(&join.join_operator, first..start, start..end)
            else {
                continue;
            };
            match constraint {
                JoinConstraint::On(expr) => on.push((Joined::On(expr), filters)),
                // USING (col): the column of the table joined and of the one just before it
                // (without the catalog, the nearest left table is the best guess).
                JoinConstraint::Using(columns) if start > first && end > start => {
                    for column in columns {
                        if let Some(name) =
                            names::parts(column).and_then(|parts| parts.last().cloned())
                        {
                            on.push((
                                Joined::Using {
                                    left: start - 1,
                                    right: start,
                                    column: name,
                                },
                                Filters::All,
                            ));
                        }
                    }
                }
                JoinConstraint::Using(_) | JoinConstraint::Natural | JoinConstraint::None => {}
            }
        }
    }

    fn relation<'a>(
        &mut self,
        frame: &mut Frame,
        factor: &'a TableFactor,
        on: &mut Vec<(Joined<'a>, Filters)>,
    ) {
        let entry = match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => match (names::parts(name), args) {
                (Some(parts), None) => match parts.as_slice() {
                    [single] if self.ctes.contains(single) => {
                        TableRef::opaque(Some(single.clone()), alias.as_ref())
                    }
                    _ => TableRef::table(self.database, &parts, alias.as_ref()),
                },
                _ => TableRef::opaque(None, alias.as_ref()),
            },
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                self.query(subquery);
                TableRef::opaque(None, alias.as_ref())
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.from_item(frame, table_with_joins, on);
                return;
            }
            _ => TableRef::opaque(None, None),
        };
        frame.scope.tables.push(entry);
    }
}

/// A join condition awaiting the complete scope.
pub(super) enum Joined<'a> {
    /// `ON expr`.
    On(&'a Expr),
    /// `USING (column)` between two tables of the scope.
    Using {
        left: usize,
        right: usize,
        column: String,
    },
}

/// The constraint of a join and the tables its ON clause filters: an outer join does not
/// filter the side it preserves.
fn join_filters(
    operator: &JoinOperator,
    left: std::ops::Range<usize>,
    right: std::ops::Range<usize>,
) -> Option<(&JoinConstraint, Filters)> {
    Some(match operator {
        JoinOperator::Join(constraint)
        | JoinOperator::Inner(constraint)
        | JoinOperator::CrossJoin(constraint)
        | JoinOperator::Semi(constraint)
        | JoinOperator::Anti(constraint)
        | JoinOperator::StraightJoin(constraint)
        | JoinOperator::AsOf { constraint, .. } => (constraint, Filters::All),
        JoinOperator::Left(constraint)
        | JoinOperator::LeftOuter(constraint)
        | JoinOperator::LeftSemi(constraint)
        | JoinOperator::LeftAnti(constraint) => (constraint, Filters::Only(right)),
        JoinOperator::Right(constraint)
        | JoinOperator::RightOuter(constraint)
        | JoinOperator::RightSemi(constraint)
        | JoinOperator::RightAnti(constraint) => (constraint, Filters::Only(left)),
        JoinOperator::FullOuter(constraint) => (constraint, Filters::None),
        _ => return None,
    })
}

fn join_leaf(table: usize, column: &str) -> Cond {
    Cond::Leaf(Owned {
        table,
        leaf: Leaf {
            target: Target::Field(column.to_owned()),
            operator: JOIN_OPERATOR.to_owned(),
            class: OpClass::Eq,
            value_type: ValueType::Other,
        },
        constant: None,
    })
}

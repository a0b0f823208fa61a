//! Statements → shapes and writes: the walk over statements, queries and FROM lists.
//!
//! Every query level (the statement's, each CTE's, each derived table's, each subquery's)
//! gets its own [`Frame`] and yields one shape per base table it reads. A CTE name or a
//! derived table in a FROM list is a table without indexes: its columns resolve, and its
//! conditions are dropped. Subqueries in expressions are lowered as queries of their own; to
//! the enclosing level `x IN (SELECT ...)` is not indexable and `EXISTS (...)` says nothing.
//!
//! This file is the only one that recurses: the modules it uses walk one level and hand back
//! what is nested (derived tables, the queries of `INSERT ... SELECT` and `COPY (...) TO`),
//! and the subqueries inside expressions are found here, so the lowering modules form a line.
//!
//! ## Layout
//! - this file: [`Lowerer`], statements, queries, SELECT, UPDATE, DELETE, conditions,
//!   subqueries.
//! - `from`: FROM lists and joins.
//! - `clauses`: the select list, ORDER BY, GROUP BY.
//! - `writes`: INSERT, COPY and the write load.

use std::ops::ControlFlow;

use sqlparser::ast::{
    CopySource, Delete, Distinct, Expr, FromTable, Insert, LimitClause, OrderByExpr, OrderByKind,
    Query, Select, SetExpr, Statement, TableWithJoins, Update, UpdateTableFromKind, Visit, Visitor,
};

use super::classify::Classifier;
use super::clauses::{self, item_expr, position};
use super::constants::Kept;
use super::frame::{Filters, Frame};
use super::from::{join_leaf, FromList, Joined};
use super::names::fold;
use super::predicate::Cond;
use super::writes;
use crate::command::SqlProtocol;
use crate::shape::{Command, ShapeOccurrence, Write, WriteKind};

/// Deepest nesting of queries (CTEs, derived tables, subqueries) walked. sqlparser's own
/// limit is lower; this guards the walk on its own.
const MAX_NESTING: usize = 64;

/// Lowers the statements of one text, one at a time.
pub(super) struct Lowerer<'d> {
    /// The connection's database.
    pub(super) database: &'d str,
    /// How the statements reached the server.
    pub(super) protocol: SqlProtocol,
    /// Literals the normalized statement keeps as written.
    pub(super) kept: Kept,
    /// Shapes found so far in the current statement.
    pub(super) shapes: Vec<ShapeOccurrence>,
    /// Writes found so far.
    pub(super) writes: Vec<Write>,
    /// Whether something could not be made sense of.
    pub(super) unsupported: bool,
    /// CTE names visible at this point of the walk.
    pub(super) ctes: Vec<String>,
    nesting: usize,
}

/// ORDER BY, LIMIT and OFFSET of a query, applied to its SELECT.
struct Modifiers<'q> {
    order_by: &'q [OrderByExpr],
    /// LIMIT or FETCH FIRST present.
    limit: bool,
    /// OFFSET present.
    skip: bool,
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
        // Positions stay positions even where no SELECT takes the sort (after a UNION).
        for key in modifiers.order_by {
            if let Some((_, span)) = position(&key.expr) {
                self.kept.keep(span);
            }
        }
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
        let on = self.walk_from(&mut frame, select.from.iter());
        frame.seal_scope();
        self.conditions(&mut frame, select.selection.as_ref(), on);
        self.subqueries(select.having.iter());
        clauses::select_list(&mut frame, select);
        self.subqueries(select.projection.iter().filter_map(item_expr));
        clauses::group_by(&mut frame, select, &mut self.kept);
        if let Some(modifiers) = modifiers {
            clauses::order_by(&mut frame, select, modifiers.order_by, &mut self.kept);
            self.subqueries(modifiers.order_by.iter().map(|key| &key.expr));
            frame.limit = modifiers.limit;
            frame.skip = modifiers.skip;
        }
        if matches!(select.distinct, Some(Distinct::Distinct | Distinct::On(_))) {
            frame.options.push("distinct".to_owned());
        }
        let shapes = frame.shapes(Command::Select);
        self.shapes.extend(shapes);
    }

    fn update(&mut self, update: &Update) {
        let mut frame = Frame::default();
        let from = match &update.from {
            Some(
                UpdateTableFromKind::BeforeSet(tables) | UpdateTableFromKind::AfterSet(tables),
            ) => tables.as_slice(),
            None => &[],
        };
        let on = self.walk_from(&mut frame, std::iter::once(&update.table).chain(from));
        frame.seal_scope();
        self.conditions(&mut frame, update.selection.as_ref(), on);
        self.subqueries(
            update
                .assignments
                .iter()
                .map(|assignment| &assignment.value),
        );
        self.writes
            .extend(writes::of_first_table(&frame, WriteKind::Update));
        let shapes = frame.shapes(Command::Update);
        self.shapes.extend(shapes);
    }

    fn delete(&mut self, delete: &Delete) {
        let mut frame = Frame::default();
        let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) = &delete.from;
        let on = self.walk_from(
            &mut frame,
            tables.iter().chain(delete.using.iter().flatten()),
        );
        frame.seal_scope();
        self.conditions(&mut frame, delete.selection.as_ref(), on);
        self.writes
            .extend(writes::of_first_table(&frame, WriteKind::Delete));
        let shapes = frame.shapes(Command::Delete);
        self.shapes.extend(shapes);
    }

    fn insert(&mut self, insert: &Insert) {
        let (write, source) = writes::insert(self.database, insert);
        if let Some(query) = source {
            self.query(query);
        }
        self.writes.extend(write);
    }

    /// A COPY: its write, or the query it reads.
    pub(super) fn copy(&mut self, source: &CopySource, to: bool) {
        let (write, query) = writes::copy(self.database, self.protocol, source, to);
        if let Some(query) = query {
            self.query(query);
        }
        self.writes.extend(write);
    }

    /// Walk a FROM list into `frame`'s scope and lower its derived tables' queries; the ON
    /// clauses are returned, to be classified once the scope is complete.
    fn walk_from<'q>(
        &mut self,
        frame: &mut Frame,
        items: impl Iterator<Item = &'q TableWithJoins>,
    ) -> Vec<(Joined<'q>, Filters)> {
        let mut from = FromList::new(self.database, &self.ctes);
        for item in items {
            from.add(frame, item);
        }
        let FromList { on, derived, .. } = from;
        for query in derived {
            self.query(query);
        }
        on
    }

    /// Lower the subqueries inside expressions (not those nested in other subqueries: each
    /// query lowers its own).
    fn subqueries<'e>(&mut self, exprs: impl Iterator<Item = &'e Expr>) {
        for expr in exprs {
            let _ = expr.visit(&mut SubqueryLowerer {
                lowerer: self,
                depth: 0,
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
}

/// Lowers each outermost subquery of an expression as a query of its own.
struct SubqueryLowerer<'l, 'd> {
    lowerer: &'l mut Lowerer<'d>,
    depth: usize,
}

impl Visitor for SubqueryLowerer<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.lowerer.query(query);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }
}

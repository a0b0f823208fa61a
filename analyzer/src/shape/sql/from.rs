//! FROM lists and joins: the scope of a query level, and the join conditions that wait for
//! it to be complete.
//!
//! A join's ON clause filters the tables it may drop rows of: all of them for an inner join,
//! the joined table for a LEFT JOIN, the tables before it for a RIGHT JOIN, none for a FULL
//! JOIN. The side it preserves gets only the join leaves.
//!
//! The walk does not lower what it finds nested: the ON clauses and the derived tables'
//! queries are handed back in a [`FromList`], for the statement walk to lower once the scope
//! is complete.

use std::ops::Range;

use sqlparser::ast::{Expr, JoinConstraint, JoinOperator, Query, TableFactor, TableWithJoins};

use super::frame::{Filters, Frame};
use super::names::{self, TableRef};
use super::predicate::{leaf, Cond};
use crate::shape::{OpClass, SqlOperator, Target, ValueType};

/// One query level's FROM list, walked: what waits for the complete scope.
pub(super) struct FromList<'q, 'c> {
    /// The connection's database, for unqualified tables.
    pub(super) database: &'c str,
    /// CTE names visible at this level: such a name in FROM is no base table.
    pub(super) ctes: &'c [String],
    /// Join conditions, with the tables they filter.
    pub(super) on: Vec<(Joined<'q>, Filters)>,
    /// The queries of derived tables, in the order they appear.
    pub(super) derived: Vec<&'q Query>,
}

impl<'q, 'c> FromList<'q, 'c> {
    /// An empty FROM list of a level run against `database`, with `ctes` in scope.
    pub(super) fn new(database: &'c str, ctes: &'c [String]) -> Self {
        Self {
            database,
            ctes,
            on: Vec::new(),
            derived: Vec::new(),
        }
    }

    /// Add one FROM entry and its joins to the scope; ON clauses are kept for later.
    pub(super) fn add(&mut self, frame: &mut Frame, item: &'q TableWithJoins) {
        let first = frame.scope.tables.len();
        self.relation(frame, &item.relation);
        for join in &item.joins {
            let start = frame.scope.tables.len();
            self.relation(frame, &join.relation);
            let end = frame.scope.tables.len();
            let Some((constraint, filters)) =
                join_filters(&join.join_operator, first..start, start..end)
            else {
                continue;
            };
            match constraint {
                JoinConstraint::On(expr) => self.on.push((Joined::On(expr), filters)),
                // USING (col): the column of the table joined and of the one just before it
                // (without the catalog, the nearest left table is the best guess).
                JoinConstraint::Using(columns) if start > first && end > start => {
                    for column in columns {
                        if let Some(name) =
                            names::parts(column).and_then(|parts| parts.last().cloned())
                        {
                            self.on.push((
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

    fn relation(&mut self, frame: &mut Frame, factor: &'q TableFactor) {
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
                self.derived.push(subquery);
                TableRef::opaque(None, alias.as_ref())
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.add(frame, table_with_joins);
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
    left: Range<usize>,
    right: Range<usize>,
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

pub(super) fn join_leaf(table: usize, column: &str) -> Cond {
    leaf(
        table,
        Target::Field(column.to_owned()),
        SqlOperator::Join,
        OpClass::Eq,
        ValueType::Other,
        None,
    )
}

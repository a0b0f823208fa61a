//! One query level (a SELECT, or the tables of an UPDATE or DELETE) being assembled into one
//! shape per table.

use std::collections::BTreeSet;
use std::ops::Range;

use super::names::Scope;
use super::predicate::{filter, Cond};
use crate::shape::{BoundConstant, Command, Shape, ShapeOccurrence, SortKey};

/// Option set on every table of a FROM list that holds more than one.
const JOIN_OPTION: &str = "join";

/// Which tables a condition filters. An outer join's ON clause filters only its nullable
/// side; the preserved side keeps just the join leaves.
#[derive(Debug, Clone)]
pub(super) enum Filters {
    /// Every table (WHERE, inner joins).
    All,
    /// The tables in this range of the scope.
    Only(Range<usize>),
    /// None (FULL JOIN).
    None,
}

impl Filters {
    fn includes(&self, table: usize) -> bool {
        match self {
            Filters::All => true,
            Filters::Only(range) => range.contains(&table),
            Filters::None => false,
        }
    }
}

/// What a query level says about each of its tables.
#[derive(Debug, Default)]
pub(super) struct Frame {
    /// The FROM list.
    pub(super) scope: Scope,
    /// Its conditions, with the tables each filters.
    pub(super) conditions: Vec<(Cond, Filters)>,
    /// Sort keys, per table.
    pub(super) sort: Vec<Vec<SortKey>>,
    /// GROUP BY columns or expressions, per table, in query order.
    pub(super) group_by: Vec<Vec<String>>,
    /// Select-list columns per table; `None` when the table is selected whole (`*`, `t.*`).
    pub(super) projection: Vec<Option<BTreeSet<String>>>,
    /// LIMIT or FETCH present.
    pub(super) limit: bool,
    /// OFFSET present.
    pub(super) skip: bool,
    /// Options that hold for every table (`distinct`).
    pub(super) options: Vec<String>,
}

impl Frame {
    /// Size the per-table lists once the FROM list is complete.
    pub(super) fn seal_scope(&mut self) {
        let tables = self.scope.tables.len();
        self.sort.resize_with(tables, Vec::new);
        self.group_by.resize_with(tables, Vec::new);
        self.projection
            .resize_with(tables, || Some(BTreeSet::new()));
    }

    /// Record a GROUP BY entry for `table`, once.
    pub(super) fn group(&mut self, table: usize, name: String) {
        if let Some(names) = self.group_by.get_mut(table) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }

    /// Record a select-list column of `table`.
    pub(super) fn project(&mut self, table: usize, column: String) {
        if let Some(Some(columns)) = self.projection.get_mut(table) {
            columns.insert(column);
        }
    }

    /// Mark `table` as selected whole.
    pub(super) fn project_all(&mut self, table: usize) {
        if let Some(columns) = self.projection.get_mut(table) {
            *columns = None;
        }
    }

    /// One shape per base table. The first table gets `first_command` (the target of an
    /// UPDATE or DELETE), the others `select`: they are only read.
    pub(super) fn shapes(self, first_command: Command) -> Vec<ShapeOccurrence> {
        let joined = self.scope.tables.len() > 1;
        let mut shapes = Vec::new();
        for (index, table) in self.scope.tables.iter().enumerate() {
            let Some(namespace) = &table.namespace else {
                continue;
            };
            let command = match index {
                0 => first_command.clone(),
                _ => Command::Select,
            };
            let mut shape = Shape::new(namespace.clone(), command);
            shape.filter = filter(self.conditions.iter().filter_map(|(cond, filters)| {
                match filters.includes(index) {
                    true => cond.project(index),
                    false => cond.join_leaves(index),
                }
            }));
            let mut constants: Vec<BoundConstant> = Vec::new();
            for (cond, filters) in &self.conditions {
                if filters.includes(index) {
                    cond.constants(index, &mut constants);
                }
            }
            constants.sort();
            constants.dedup();
            shape.sort = self.sort.get(index).cloned().unwrap_or_default();
            shape.group_by = self.group_by.get(index).cloned().unwrap_or_default();
            shape.projection = match self.projection.get(index) {
                Some(Some(columns)) => columns.iter().cloned().collect(),
                _ => Vec::new(),
            };
            shape.limit = self.limit;
            shape.skip = self.skip;
            shape.options = self.options.clone();
            if joined {
                shape.options.push(JOIN_OPTION.to_owned());
            }
            shape.options.sort();
            shape.options.dedup();
            shapes.push(ShapeOccurrence {
                constants,
                ..ShapeOccurrence::from(shape)
            });
        }
        shapes
    }
}

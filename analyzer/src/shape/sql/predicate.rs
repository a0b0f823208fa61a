//! A WHERE clause over several tables, and its projection onto each one.
//!
//! [`Cond`] is the filter of one query level with every leaf attached to the table whose
//! column it tests. A table's shape gets the part of it that constrains that table alone:
//! - a conjunction keeps its children that do;
//! - a disjunction constrains a table only if every branch does (otherwise rows of that
//!   table can pass through the branch that says nothing about it);
//! - a negation is kept only when it is about that table alone;
//! - a leaf about no table (`1 = 1`, `$1 IS NULL`) constrains none.
//!
//! Conjunctions are flattened and sorted, and identical disjunction branches merged
//! (`id = 1 OR id = 2` is one branch whatever its length), so the order in which conditions
//! are written does not change a shape.

use crate::shape::{
    BoundConstant, Constant, Leaf, OpClass, Predicate, SqlOperator, Target, ValueType,
};

/// A filter whose leaves know their table.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cond {
    /// Every child holds.
    And(Vec<Cond>),
    /// Some child holds.
    Or(Vec<Cond>),
    /// The child does not hold.
    Not(Box<Cond>),
    /// A comparison on one table's column.
    Leaf(Owned),
    /// A condition on no table of this scope.
    Free,
}

/// A leaf and the table it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Owned {
    /// Index into the scope.
    pub(super) table: usize,
    /// The comparison.
    pub(super) leaf: Leaf,
    /// The partial-index constant it carried, if any.
    pub(super) constant: Option<Constant>,
}

impl Cond {
    /// Whether any leaf is about `table`.
    fn mentions(&self, table: usize) -> bool {
        match self {
            Cond::And(children) | Cond::Or(children) => {
                children.iter().any(|child| child.mentions(table))
            }
            Cond::Not(child) => child.mentions(table),
            Cond::Leaf(owned) => owned.table == table,
            Cond::Free => false,
        }
    }

    /// Whether every leaf is about `table` (and there is one).
    fn only(&self, table: usize) -> bool {
        self.mentions(table) && !self.mentions_other(table)
    }

    fn mentions_other(&self, table: usize) -> bool {
        match self {
            Cond::And(children) | Cond::Or(children) => {
                children.iter().any(|child| child.mentions_other(table))
            }
            Cond::Not(child) => child.mentions_other(table),
            Cond::Leaf(owned) => owned.table != table,
            Cond::Free => false,
        }
    }

    /// What this condition says about `table` alone; `None` when it does not constrain it.
    pub(super) fn project(&self, table: usize) -> Option<Predicate> {
        match self {
            Cond::Leaf(owned) if owned.table == table => Some(Predicate::Leaf(owned.leaf.clone())),
            Cond::Leaf(_) | Cond::Free => None,
            Cond::And(children) => {
                let mut kept = Vec::new();
                for child in children {
                    match child.project(table) {
                        Some(Predicate::And(grandchildren)) => kept.extend(grandchildren),
                        Some(predicate) => kept.push(predicate),
                        None => {}
                    }
                }
                kept.sort();
                match kept.len() {
                    0 => None,
                    1 => kept.pop(),
                    _ => Some(Predicate::And(kept)),
                }
            }
            Cond::Or(branches) => {
                let mut kept = branches
                    .iter()
                    .map(|branch| branch.project(table))
                    .collect::<Option<Vec<_>>>()?;
                kept.sort();
                kept.dedup();
                Some(Predicate::Or(kept))
            }
            Cond::Not(child) if child.only(table) => child
                .project(table)
                .map(|inner| Predicate::Not(Box::new(inner))),
            Cond::Not(_) => None,
        }
    }

    /// The join leaves this condition puts on `table` at its top level. An outer join's ON
    /// clause does not filter the side it preserves, which gets only these.
    pub(super) fn join_leaves(&self, table: usize) -> Option<Predicate> {
        let mut leaves = Vec::new();
        self.visit_conjuncts(&mut |owned| {
            if owned.table == table && owned.leaf.operator.is_join() {
                leaves.push(Predicate::Leaf(owned.leaf.clone()));
            }
        });
        leaves.sort();
        match leaves.len() {
            0 => None,
            1 => leaves.pop(),
            _ => Some(Predicate::And(leaves)),
        }
    }

    /// The constants carried by `table`'s leaves at the top level (not under OR or NOT, where
    /// they do not hold for every row and cannot define a partial index).
    pub(super) fn constants(&self, table: usize, into: &mut Vec<BoundConstant>) {
        self.visit_conjuncts(&mut |owned| {
            if let (true, Some(constant)) = (owned.table == table, &owned.constant) {
                into.push(BoundConstant {
                    target: owned.leaf.target.clone(),
                    operator: owned.leaf.operator.clone(),
                    constant: constant.clone(),
                });
            }
        });
    }

    fn visit_conjuncts(&self, visit: &mut impl FnMut(&Owned)) {
        match self {
            Cond::And(children) => children
                .iter()
                .for_each(|child| child.visit_conjuncts(visit)),
            Cond::Leaf(owned) => visit(owned),
            Cond::Or(_) | Cond::Not(_) | Cond::Free => {}
        }
    }
}

/// The filter of one table: the conjunction of what each condition says about it, always an
/// explicit AND at the top (the empty AND when nothing constrains it).
pub(super) fn filter(parts: impl IntoIterator<Item = Predicate>) -> Predicate {
    let mut conjuncts = Vec::new();
    for part in parts {
        match part {
            Predicate::And(children) => conjuncts.extend(children),
            other => conjuncts.push(other),
        }
    }
    conjuncts.sort();
    Predicate::And(conjuncts)
}

/// A leaf on `table`.
pub(super) fn leaf(
    table: usize,
    target: Target,
    operator: SqlOperator,
    class: OpClass,
    value_type: ValueType,
    constant: Option<Constant>,
) -> Cond {
    Cond::Leaf(Owned {
        table,
        leaf: Leaf {
            target,
            operator: operator.into(),
            class,
            value_type,
        },
        constant,
    })
}

/// One not-indexable leaf per table an expression reads, on the first target of each.
pub(super) fn not_indexable(targets: Vec<(usize, Target)>, operator: SqlOperator) -> Cond {
    let mut leaves: Vec<Cond> = Vec::new();
    let mut seen: Vec<usize> = Vec::new();
    for (table, target) in targets {
        if !seen.contains(&table) {
            seen.push(table);
            leaves.push(leaf(
                table,
                target,
                operator,
                OpClass::NotIndexable,
                ValueType::Other,
                None,
            ));
        }
    }
    match leaves.len() {
        0 => Cond::Free,
        1 => leaves.pop().unwrap_or(Cond::Free),
        _ => Cond::And(leaves),
    }
}

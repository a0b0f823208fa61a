//! A filter in DNF-ish form: the alternatives an index must serve, each an AND of leaves.
//!
//! `And` multiplies out its children's alternatives, `Or` adds them up, `ElemMatch` is
//! transparent (its leaves get the joined path `items.sku`), and `Not` / `Nor` hold nothing an
//! index can use. An `Or` with an alternative that no index can serve is hopeless: every row
//! must be read for that alternative anyway. At the top of a filter that means no index
//! helps the shape; under an `And` the `Or` is just left to the filter.

use crate::shape::{join_path, Leaf, Predicate};

/// Past this many alternatives a filter is not advised on: the expansion is exponential,
/// and a query with that many `$or` branches is better rewritten than indexed.
pub(crate) const MAX_BRANCHES: usize = 32;

/// The alternatives of a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expansion {
    /// Each branch is the AND of its leaves.
    Branches(Vec<Vec<Leaf>>),
    /// No index can serve this predicate (or it has too many alternatives).
    Blocked,
}

/// Expand `predicate`. `indexable` tells whether a leaf can find rows through an index.
pub(crate) fn expand(predicate: &Predicate, indexable: &dyn Fn(&Leaf) -> bool) -> Expansion {
    expand_under(predicate, "", indexable)
}

fn expand_under(predicate: &Predicate, path: &str, indexable: &dyn Fn(&Leaf) -> bool) -> Expansion {
    match predicate {
        Predicate::Leaf(leaf) => Expansion::Branches(vec![vec![with_path(leaf, path)]]),
        Predicate::Not(_) | Predicate::Nor(_) => Expansion::Branches(vec![Vec::new()]),
        Predicate::ElemMatch {
            path: inner,
            predicate,
        } => expand_under(predicate, &join_path(path, inner), indexable),
        Predicate::And(children) => {
            let mut branches: Vec<Vec<Leaf>> = vec![Vec::new()];
            for child in children {
                // A hopeless `Or` under an `And` only narrows the rows the other leaves find.
                let Expansion::Branches(alternatives) = expand_under(child, path, indexable) else {
                    continue;
                };
                if branches.len().saturating_mul(alternatives.len()) > MAX_BRANCHES {
                    return Expansion::Blocked;
                }
                branches = branches
                    .iter()
                    .flat_map(|prefix| {
                        alternatives.iter().map(move |alternative| {
                            let mut branch = prefix.clone();
                            for leaf in alternative {
                                if !branch.contains(leaf) {
                                    branch.push(leaf.clone());
                                }
                            }
                            branch
                        })
                    })
                    .collect();
            }
            Expansion::Branches(branches)
        }
        Predicate::Or(children) => {
            let mut branches = Vec::new();
            for child in children {
                let Expansion::Branches(alternatives) = expand_under(child, path, indexable) else {
                    return Expansion::Blocked;
                };
                if alternatives
                    .iter()
                    .any(|branch| !branch.iter().any(indexable))
                {
                    return Expansion::Blocked;
                }
                branches.extend(alternatives);
                if branches.len() > MAX_BRANCHES {
                    return Expansion::Blocked;
                }
            }
            if branches.is_empty() {
                // `$or: []` matches nothing; there is nothing to serve.
                return Expansion::Blocked;
            }
            Expansion::Branches(branches)
        }
    }
}

fn with_path(leaf: &Leaf, path: &str) -> Leaf {
    Leaf {
        target: leaf.target.under(path),
        ..leaf.clone()
    }
}

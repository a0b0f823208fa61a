//! Column ownership: which table of a FROM list an unqualified column belongs to.
//!
//! SQL lowering sees `FROM customer, warehouse WHERE w_id = $1` without the catalog, so it
//! cannot tell whose `w_id` that is. The catalog can: `pg_attribute` lists every column of
//! every user table. A column that exactly one of the candidate tables has is attributed to
//! it; a column that several have, or none, is not attributed, and advice names it in its
//! notes rather than guessing a key.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::shape::Namespace;

/// The columns (or sampled fields) of each namespace the catalog could read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ColumnOwners(pub BTreeMap<Namespace, BTreeSet<String>>);

/// Who owns a column, among a query's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribution<'a> {
    /// Exactly this table has it.
    Owner(&'a Namespace),
    /// Several of the tables have it (the query would be ambiguous to PostgreSQL too).
    Ambiguous,
    /// None of the tables whose columns are known has it, or their columns were not read.
    Unknown,
}

impl ColumnOwners {
    /// Record the columns of one namespace.
    pub fn insert(&mut self, namespace: Namespace, columns: impl IntoIterator<Item = String>) {
        self.0.entry(namespace).or_default().extend(columns);
    }

    /// Whether the columns of `namespace` were read.
    pub fn knows(&self, namespace: &Namespace) -> bool {
        self.0.contains_key(namespace)
    }

    /// Whether `namespace` is known to have `column`; `None` when its columns were not read.
    pub fn has(&self, namespace: &Namespace, column: &str) -> Option<bool> {
        self.0
            .get(namespace)
            .map(|columns| columns.contains(column))
    }

    /// Which of `tables` owns `column`. Certain only when every table's columns were read.
    pub fn owner<'a>(&self, column: &str, tables: &'a [Namespace]) -> Attribution<'a> {
        if tables.iter().any(|table| !self.knows(table)) {
            return Attribution::Unknown;
        }
        let mut owners = tables
            .iter()
            .filter(|table| self.has(table, column) == Some(true));
        match (owners.next(), owners.next()) {
            (Some(owner), None) => Attribution::Owner(owner),
            (Some(_), Some(_)) => Attribution::Ambiguous,
            (None, _) => Attribution::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unqualified_column_goes_to_the_one_table_that_has_it() {
        let customer = Namespace::postgres("tpcc", "public", "customer");
        let warehouse = Namespace::postgres("tpcc", "public", "warehouse");
        let mut owners = ColumnOwners::default();
        owners.insert(
            customer.clone(),
            ["c_id", "c_w_id", "id"].map(str::to_owned),
        );
        owners.insert(warehouse.clone(), ["w_id", "id"].map(str::to_owned));
        let tables = [customer.clone(), warehouse.clone()];
        assert_eq!(
            owners.owner("w_id", &tables),
            Attribution::Owner(&warehouse)
        );
        assert_eq!(
            owners.owner("c_w_id", &tables),
            Attribution::Owner(&customer)
        );
        assert_eq!(owners.owner("id", &tables), Attribution::Ambiguous);
        assert_eq!(owners.owner("nowhere", &tables), Attribution::Unknown);
        let unread = Namespace::postgres("tpcc", "public", "district");
        assert_eq!(
            owners.owner("w_id", &[warehouse, unread]),
            Attribution::Unknown,
            "a table whose columns were not read could own it too"
        );
    }
}

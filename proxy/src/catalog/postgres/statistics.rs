//! Value statistics from `pg_stats`: `n_distinct`, `null_frac` and `most_common_freqs`, with
//! the table's `reltuples`. `most_common_vals` and `histogram_bounds` are never selected:
//! they hold values.

use std::collections::BTreeMap;

use indextap_analyzer::catalog::{FieldStatistics, NamespaceStatistics};
use indextap_analyzer::shape::Namespace;
use tokio_postgres::Client;

use super::{read_rows, relation};

const STATISTICS: &str = "
SELECT s.schemaname::text, s.tablename::text, s.attname::text, s.null_frac::float8,
       s.n_distinct::float8, coalesce(s.most_common_freqs::float8[], '{}'), c.reltuples::float8
  FROM pg_stats s
  JOIN pg_namespace n ON n.nspname = s.schemaname
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
 WHERE NOT s.inherited
   AND s.schemaname NOT IN ('pg_catalog', 'information_schema')
   AND s.schemaname NOT LIKE 'pg_toast%'";

/// The statistics of every analysed user table of `database`.
pub async fn statistics(
    client: &Client,
    database: &str,
) -> Result<BTreeMap<Namespace, NamespaceStatistics>, String> {
    let rows = read_rows(client, STATISTICS, "pg_stats", |row| {
        Ok((
            relation(row, database)?,
            row.try_get::<_, String>(2)?,
            row.try_get::<_, f64>(3)?,
            row.try_get::<_, f64>(4)?,
            row.try_get::<_, Vec<f64>>(5)?,
            row.try_get::<_, f64>(6)?,
        ))
    })
    .await?;
    let mut tables: BTreeMap<Namespace, NamespaceStatistics> = BTreeMap::new();
    for (namespace, column, null_fraction, n_distinct, frequencies, rows) in rows {
        let table = tables.entry(namespace).or_default();
        // reltuples is -1 for a table never vacuumed or analysed (PostgreSQL 14+).
        table.rows = rows.max(0.0);
        table.fields.insert(
            column,
            field(n_distinct, null_fraction, frequencies, table.rows),
        );
    }
    Ok(tables)
}

/// One column's figures. A negative `n_distinct` is a fraction of the rows (the column's
/// distinct count grows with the table), as PostgreSQL documents it.
fn field(n_distinct: f64, null_fraction: f64, frequencies: Vec<f64>, rows: f64) -> FieldStatistics {
    let distinct = if n_distinct < 0.0 {
        -n_distinct * rows
    } else {
        n_distinct
    };
    FieldStatistics {
        distinct,
        null_fraction,
        most_common_frequencies: frequencies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_n_distinct_scales_with_the_rows() {
        assert_eq!(field(-1.0, 0.0, Vec::new(), 5000.0).distinct, 5000.0);
        assert_eq!(field(-0.5, 0.0, Vec::new(), 5000.0).distinct, 2500.0);
        assert_eq!(field(10.0, 0.1, vec![0.5], 5000.0).distinct, 10.0);
    }
}

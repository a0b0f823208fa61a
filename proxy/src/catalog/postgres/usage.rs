//! Index usage from `pg_stat_user_indexes.idx_scan`, with what each index enforces from
//! `pg_index` and `pg_constraint`: primary key, unique, exclusion, and foreign key (the
//! referenced key's index, or an index that leads with the referencing columns).

use std::collections::BTreeMap;

use indextap_analyzer::catalog::{Constraint, IndexUsage};
use indextap_analyzer::shape::Namespace;
use tokio_postgres::Client;

use super::{read_rows, relation};

const USAGE: &str = "
SELECT s.schemaname::text, s.relname::text, s.indexrelname::text, s.idx_scan,
       i.indisprimary, i.indisunique,
       EXISTS (SELECT 1 FROM pg_constraint k
                WHERE k.conindid = i.indexrelid AND k.contype = 'x'),
       EXISTS (SELECT 1 FROM pg_constraint k
                WHERE k.contype = 'f'
                  AND (k.conindid = i.indexrelid
                       OR (k.conrelid = i.indrelid
                           AND i.indnkeyatts >= cardinality(k.conkey)
                           AND (SELECT array_agg(a ORDER BY a)
                                  FROM unnest((i.indkey::int2[])[0:cardinality(k.conkey) - 1]) a)
                             = (SELECT array_agg(a ORDER BY a) FROM unnest(k.conkey) a))))
  FROM pg_stat_user_indexes s
  JOIN pg_index i ON i.indexrelid = s.indexrelid";

/// Every user index of `database`: its scans so far and its constraints.
pub async fn usage(
    client: &Client,
    database: &str,
) -> Result<BTreeMap<Namespace, Vec<IndexUsage>>, String> {
    let rows = read_rows(client, USAGE, "pg_stat_user_indexes", |row| {
        Ok((
            relation(row, database)?,
            row.try_get::<_, String>(2)?,
            row.try_get::<_, Option<i64>>(3)?,
            [
                (Constraint::PrimaryKey, row.try_get::<_, bool>(4)?),
                (Constraint::Unique, row.try_get::<_, bool>(5)?),
                (Constraint::Exclusion, row.try_get::<_, bool>(6)?),
                (Constraint::ForeignKey, row.try_get::<_, bool>(7)?),
            ],
        ))
    })
    .await?;
    let mut indexes: BTreeMap<Namespace, Vec<IndexUsage>> = BTreeMap::new();
    for (namespace, name, scans, flags) in rows {
        indexes.entry(namespace).or_default().push(IndexUsage {
            name,
            uses: scans.and_then(|scans| u64::try_from(scans).ok()),
            baseline: None,
            constraints: flags
                .into_iter()
                .filter_map(|(constraint, holds)| holds.then_some(constraint))
                .collect(),
        });
    }
    Ok(indexes)
}

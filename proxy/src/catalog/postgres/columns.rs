//! Column owners from `pg_attribute`: every column of every user table and materialized
//! view of one database (the relations an index can be built on), so an unqualified column
//! of a join can be attributed, and a table the list lacks is known not to be a user table.

use indextap_analyzer::catalog::ColumnOwners;
use tokio_postgres::Client;

use super::{read_rows, relation};

const COLUMNS: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm')
   AND a.attnum > 0 AND NOT a.attisdropped
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg_toast%'";

/// The columns of every indexable user relation of `database`.
pub async fn columns(client: &Client, database: &str) -> Result<ColumnOwners, String> {
    let rows = read_rows(client, COLUMNS, "pg_attribute", |row| {
        Ok((relation(row, database)?, row.try_get::<_, String>(2)?))
    })
    .await?;
    let mut owners = ColumnOwners::default();
    for (namespace, column) in rows {
        owners.insert(namespace, [column]);
    }
    Ok(owners)
}

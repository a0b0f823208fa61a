//! Column owners from `pg_attribute`: every column of every user table and materialized
//! view of one database (the relations an index can be built on), so an unqualified column
//! of a join can be attributed, and a table the list lacks is known not to be a user table.

use indextap_analyzer::catalog::ColumnOwners;
use indextap_analyzer::shape::Namespace;
use tokio_postgres::Client;

use super::{sqlstate_or_kind, TIMEOUT};

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
    let rows = tokio::time::timeout(TIMEOUT, client.query(COLUMNS, &[]))
        .await
        .map_err(|_| "reading pg_attribute timed out".to_string())?
        .map_err(|e| format!("reading pg_attribute failed: {}", sqlstate_or_kind(&e)))?;
    let mut owners = ColumnOwners::default();
    for row in rows {
        let (Ok(schema), Ok(table), Ok(column)) = (
            row.try_get::<_, String>(0),
            row.try_get::<_, String>(1),
            row.try_get::<_, String>(2),
        ) else {
            return Err("reading pg_attribute failed: unexpected row".to_string());
        };
        owners.insert(Namespace::postgres(database, schema, table), [column]);
    }
    Ok(owners)
}

//! PostgreSQL: existing indexes from `pg_index`.
//!
//! ## Layout
//! - this file: [`connect`] (one connection per database, with the admin URL's
//!   credentials) and [`existing`] (every btree/GIN index of the user's schemas, as
//!   [`IndexSpec`]s, through [`CatalogRow`]).
//! - [`columns`]: column owners from `pg_attribute`, to attribute unqualified columns.
//! - [`statistics`]: `pg_stats` figures (counts and frequencies, never values).
//! - [`usage`]: `idx_scan` and the constraints each index enforces, for drop advice.
//! - `printed`: reading the partial predicates PostgreSQL prints (`pg_get_expr`) back into
//!   the analyzer's partial terms. Keys (`pg_get_indexdef`) are read by the analyzer's own
//!   canonicaliser, `indextap_analyzer::shape::sql::printed_key`.
//!
//! Planner evidence through HypoPG is in `super::verify`.

pub mod columns;
mod printed;
pub mod statistics;
pub mod usage;

use std::time::Duration;

use indextap_analyzer::advise::{IndexKey, IndexMethod, IndexSpec};
use indextap_analyzer::shape::sql::{printed_key, unquote};
use indextap_analyzer::shape::Namespace;
use tokio_postgres::{Client, NoTls, Row};

use printed::partial_terms;

/// How long connecting or one catalog query may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Connect to `database` with the admin URL's host, port and credentials.
pub async fn connect(admin_url: &str, database: &str) -> Result<Client, String> {
    let mut config: tokio_postgres::Config = admin_url
        .parse()
        .map_err(|_| "the PostgreSQL admin URL does not parse".to_string())?;
    config.dbname(database);
    config.application_name("indextap-catalog");
    config.connect_timeout(TIMEOUT);
    let (client, connection) = tokio::time::timeout(TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| format!("connecting to database {database} timed out"))?
        .map_err(|e| {
            format!(
                "cannot connect to database {database}: {}",
                sqlstate_or_kind(&e)
            )
        })?;
    tokio::spawn(async move {
        // The connection task ends when the client is dropped; its error, if any, has
        // already surfaced through the client.
        let _ = connection.await;
    });
    Ok(client)
}

/// The database the admin URL names, or `postgres`.
pub fn admin_database(admin_url: &str) -> String {
    admin_url
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|config| config.get_dbname().map(str::to_string))
        .unwrap_or_else(|| "postgres".to_string())
}

/// The databases of the server that accept connections (templates left out).
pub async fn databases(client: &Client) -> Result<Vec<String>, String> {
    let rows = tokio::time::timeout(
        TIMEOUT,
        client.query(
            "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate",
            &[],
        ),
    )
    .await
    .map_err(|_| "listing databases timed out".to_string())?
    .map_err(|e| format!("listing databases failed: {}", sqlstate_or_kind(&e)))?;
    Ok(rows.iter().filter_map(|row| row.try_get(0).ok()).collect())
}

/// A database error says only its SQLSTATE: messages can quote values.
pub fn sqlstate_or_kind(error: &tokio_postgres::Error) -> String {
    match error.code() {
        Some(code) => format!("SQLSTATE {}", code.code()),
        None if error.is_closed() => "connection closed".to_string(),
        None => "connection error".to_string(),
    }
}

const EXISTING_INDEXES: &str = "
SELECT n.nspname::text, t.relname::text, c.relname::text, i.indisunique, i.indisprimary,
       am.amname::text, i.indnkeyatts::int4,
       pg_get_expr(i.indpred, i.indrelid),
       array(SELECT pg_get_indexdef(i.indexrelid, k, true)
               FROM generate_series(1, i.indnatts) AS k ORDER BY k),
       array(SELECT (i.indoption[k - 1] & 1) = 1
               FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k),
       array(SELECT (i.indoption[k - 1] & 2) = 2
               FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k),
       array(SELECT CASE WHEN opc.opcdefault THEN '' ELSE coalesce(opc.opcname::text, '') END
               FROM generate_series(1, i.indnkeyatts) AS k
               LEFT JOIN pg_opclass opc ON opc.oid = i.indclass[k - 1] ORDER BY k)
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_am am ON am.oid = c.relam
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg_toast%'
   AND i.indisvalid";

/// Every valid btree and GIN index in `database`'s user schemas.
pub async fn existing(client: &Client, database: &str) -> Result<Vec<IndexSpec>, String> {
    let rows = read_rows(client, EXISTING_INDEXES, "pg_index", CatalogRow::read).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| row.into_spec(database))
        .collect())
}

/// Runs one catalog query within [`TIMEOUT`] and reads each row with `read`. An error names
/// the catalog (`what`) and the SQLSTATE, never a value.
async fn read_rows<T>(
    client: &Client,
    query: &str,
    what: &str,
    read: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>, String> {
    let rows = tokio::time::timeout(TIMEOUT, client.query(query, &[]))
        .await
        .map_err(|_| format!("reading {what} timed out"))?
        .map_err(|e| format!("reading {what} failed: {}", sqlstate_or_kind(&e)))?;
    rows.iter()
        .map(|row| read(row).map_err(|_| format!("reading {what} failed: unexpected row")))
        .collect()
}

/// Columns 0 and 1 of a catalog row, the schema and the relation, as a namespace of
/// `database`.
fn relation(row: &Row, database: &str) -> Result<Namespace, tokio_postgres::Error> {
    Ok(Namespace::postgres(
        database,
        row.try_get::<_, String>(0)?,
        row.try_get::<_, String>(1)?,
    ))
}

/// One `pg_index` row, as read.
#[derive(Debug, Clone, Default)]
pub struct CatalogRow {
    /// Schema of the table.
    pub schema: String,
    /// The table.
    pub table: String,
    /// The index.
    pub name: String,
    /// Unique or primary key.
    pub unique: bool,
    /// `btree`, `gin`, ...
    pub method: String,
    /// Key columns (the rest are INCLUDE columns).
    pub key_count: usize,
    /// The partial predicate, as `pg_get_expr` prints it.
    pub predicate: Option<String>,
    /// Every column or expression, as `pg_get_indexdef` prints it.
    pub columns: Vec<String>,
    /// Per key column: DESC.
    pub descending: Vec<bool>,
    /// Per key column: NULLS FIRST.
    pub nulls_first: Vec<bool>,
    /// Per key column: the operator class, empty when it is the type's default.
    pub opclasses: Vec<String>,
}

impl CatalogRow {
    /// One row of `EXISTING_INDEXES`.
    fn read(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            schema: row.try_get(0)?,
            table: row.try_get(1)?,
            name: row.try_get(2)?,
            unique: row.try_get::<_, bool>(3)? || row.try_get::<_, bool>(4)?,
            method: row.try_get(5)?,
            key_count: usize::try_from(row.try_get::<_, i32>(6)?).unwrap_or(0),
            predicate: row.try_get(7)?,
            columns: row.try_get(8)?,
            descending: row.try_get(9)?,
            nulls_first: row.try_get(10)?,
            opclasses: row.try_get(11)?,
        })
    }

    /// The row as an [`IndexSpec`], or `None` for what the advisor does not model (hash,
    /// GiST, BRIN, an unrecognised partial predicate): such an index cannot be assumed to
    /// serve a candidate.
    pub fn into_spec(self, database: &str) -> Option<IndexSpec> {
        let trigram = self.opclasses.iter().any(|o| o.starts_with("gin_trgm"));
        // A B-tree with another operator class than its type's default (`text_pattern_ops`,
        // which Django adds beside a unique varchar for LIKE 'x%') orders differently: it
        // serves no candidate, and is no duplicate of the default one.
        let special_btree = self.opclasses.iter().any(|o| !o.is_empty());
        let method = match (self.method.as_str(), trigram) {
            ("btree", _) if special_btree => return None,
            ("btree", _) => IndexMethod::Btree,
            ("gin", true) => IndexMethod::GinTrgm,
            ("gin", false) => IndexMethod::Gin,
            _ => return None,
        };
        let key_count = self.key_count.min(self.columns.len());
        let keys = self.columns[..key_count]
            .iter()
            .enumerate()
            .map(|(k, text)| {
                let descending = self.descending.get(k).copied().unwrap_or(false);
                // Spelled out only when it differs from the direction's default, as the
                // analyzer writes it (ASC NULLS LAST, DESC NULLS FIRST).
                let nulls_first = self.nulls_first.get(k).copied().unwrap_or(descending);
                IndexKey {
                    target: printed_key(text),
                    direction: if descending { -1 } else { 1 },
                    nulls_first: (method == IndexMethod::Btree && nulls_first != descending)
                        .then_some(nulls_first),
                }
            })
            .collect();
        let include = self.columns[key_count..]
            .iter()
            .map(|c| unquote(c))
            .collect();
        let partial = match &self.predicate {
            Some(text) => partial_terms(text)?,
            None => Vec::new(),
        };
        Some(IndexSpec {
            namespace: Namespace::postgres(database, self.schema, self.table),
            keys,
            method,
            partial,
            include,
            unique: self.unique,
            name: Some(self.name),
        })
    }
}

#[cfg(test)]
mod tests {
    use indextap_analyzer::advise::{Condition, PartialTerm};
    use indextap_analyzer::shape::Target;

    use super::*;

    fn row(columns: &[&str], keys: usize, predicate: Option<&str>) -> CatalogRow {
        CatalogRow {
            schema: "public".into(),
            table: "orders".into(),
            name: "orders_idx".into(),
            unique: false,
            method: "btree".into(),
            key_count: keys,
            predicate: predicate.map(str::to_string),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            descending: vec![false, true, false][..keys.min(3)].to_vec(),
            nulls_first: vec![false, true, false][..keys.min(3)].to_vec(),
            opclasses: vec![String::new(); keys],
        }
    }

    #[test]
    fn null_placement_is_kept_only_when_it_is_not_the_default() {
        let mut nulls_last = row(&["account_id", "due_at"], 2, None);
        nulls_last.nulls_first = vec![false, false];
        let spec = nulls_last.into_spec("app").expect("btree");
        assert_eq!(
            spec.keys[0].nulls_first, None,
            "ASC NULLS LAST is the default"
        );
        assert_eq!(spec.keys[1].direction, -1);
        assert_eq!(spec.keys[1].nulls_first, Some(false), "DESC NULLS LAST");

        let mut nulls_first = row(&["account_id", "due_at"], 2, None);
        nulls_first.nulls_first = vec![true, true];
        let spec = nulls_first.into_spec("app").expect("btree");
        assert_eq!(spec.keys[0].nulls_first, Some(true), "ASC NULLS FIRST");
        assert_eq!(
            spec.keys[1].nulls_first, None,
            "DESC NULLS FIRST is the default"
        );
    }

    #[test]
    fn keys_directions_and_include() {
        let spec = row(&["customer_id", "\"startedAt\"", "total"], 2, None)
            .into_spec("app")
            .expect("btree");
        assert_eq!(spec.keys[0].target, Target::Field("customer_id".into()));
        assert_eq!(spec.keys[1].target, Target::Field("startedAt".into()));
        assert_eq!(spec.keys[1].direction, -1);
        assert_eq!(spec.include, vec!["total".to_string()]);
        assert_eq!(
            spec.namespace,
            Namespace::postgres("app", "public", "orders")
        );
    }

    #[test]
    fn partial_predicates_as_printed_by_postgres() {
        let spec = row(&["job_id"], 1, Some("((deleted_at IS NULL) AND is_active AND (status = ANY (ARRAY['QUEUED'::text, 'PENDING'::text])))"))
            .into_spec("app")
            .expect("modelled");
        assert_eq!(
            spec.partial,
            vec![
                PartialTerm {
                    target: Target::Field("deleted_at".into()),
                    condition: Condition::IsNull
                },
                PartialTerm {
                    target: Target::Field("is_active".into()),
                    condition: Condition::Bool(true)
                },
                PartialTerm {
                    target: Target::Field("status".into()),
                    condition: Condition::InTokens(vec!["PENDING".into(), "QUEUED".into()])
                },
            ]
        );
        assert!(row(&["a"], 1, Some("a > 5")).into_spec("app").is_none());
        let mut hash = row(&["a"], 1, None);
        hash.method = "hash".into();
        assert!(hash.into_spec("app").is_none());
        let mut pattern = row(&["email"], 1, None);
        pattern.opclasses = vec!["varchar_pattern_ops".into()];
        assert!(
            pattern.into_spec("app").is_none(),
            "a pattern_ops B-tree serves LIKE, not equality or order"
        );
    }
}

//! The write load: INSERT counts its rows, UPDATE and DELETE count once per statement, and
//! COPY FROM counts once per COPY.
//!
//! Each function gives the write and, where the statement reads too (`INSERT ... SELECT`,
//! `COPY (SELECT ...) TO`), the query for the statement walk to lower.

use sqlparser::ast::{CopySource, Insert, ObjectName, Query, SetExpr, TableObject};

use super::frame::Frame;
use super::names::{self, TableRef};
use crate::command::SqlProtocol;
use crate::shape::{Namespace, Write, WriteKind};

/// The rows an INSERT writes, and the query that feeds it, if any.
pub(super) fn insert<'q>(database: &str, insert: &'q Insert) -> (Option<Write>, Option<&'q Query>) {
    let mut rows = 1;
    let mut source = None;
    if let Some(query) = &insert.source {
        match query.body.as_ref() {
            SetExpr::Values(values) => rows = values.rows.len().max(1),
            _ => source = Some(query.as_ref()),
        }
    }
    let write = match &insert.table {
        TableObject::TableName(name) => namespace(database, name).map(|namespace| Write {
            namespace,
            kind: WriteKind::Insert,
            count: u64::try_from(rows).unwrap_or(u64::MAX),
        }),
        _ => None,
    };
    (write, source)
}

/// `COPY t FROM ...` writes; `COPY (SELECT ...) TO ...` reads. A COPY that reached the
/// server through the copy sub-protocol is a write whatever its text says.
pub(super) fn copy<'q>(
    database: &str,
    protocol: SqlProtocol,
    source: &'q CopySource,
    to: bool,
) -> (Option<Write>, Option<&'q Query>) {
    match source {
        CopySource::Table { table_name, .. } if !to || protocol == SqlProtocol::Copy => {
            let write = namespace(database, table_name).map(|namespace| Write {
                namespace,
                kind: WriteKind::Insert,
                count: 1,
            });
            (write, None)
        }
        CopySource::Query(query) => (None, Some(query.as_ref())),
        CopySource::Table { .. } => (None, None),
    }
}

/// An UPDATE or DELETE of the first table of `frame`.
pub(super) fn of_first_table(frame: &Frame, kind: WriteKind) -> Option<Write> {
    let namespace = frame.scope.tables.first()?.namespace.clone()?;
    Some(Write {
        namespace,
        kind,
        count: 1,
    })
}

fn namespace(database: &str, name: &ObjectName) -> Option<Namespace> {
    let parts = names::parts(name)?;
    TableRef::table(database, &parts, None).namespace
}

//! The write load: INSERT counts its rows, UPDATE and DELETE count once per statement, and
//! COPY FROM counts once per COPY.

use sqlparser::ast::{CopySource, Insert, ObjectName, SetExpr, TableObject};

use super::extract::Lowerer;
use super::frame::Frame;
use super::names::{self, TableRef};
use crate::command::SqlProtocol;
use crate::shape::{Namespace, Write, WriteKind};

impl Lowerer<'_> {
    pub(super) fn insert(&mut self, insert: &Insert) {
        let mut rows = 1;
        if let Some(source) = &insert.source {
            match source.body.as_ref() {
                SetExpr::Values(values) => rows = values.rows.len().max(1),
                _ => self.query(source),
            }
        }
        if let TableObject::TableName(name) = &insert.table {
            if let Some(namespace) = self.namespace(name) {
                self.writes.push(Write {
                    namespace,
                    kind: WriteKind::Insert,
                    count: u64::try_from(rows).unwrap_or(u64::MAX),
                });
            }
        }
    }

    /// `COPY t FROM ...` writes; `COPY (SELECT ...) TO ...` reads. A COPY that reached the
    /// server through the copy sub-protocol is a write whatever its text says.
    pub(super) fn copy(&mut self, source: &CopySource, to: bool) {
        match source {
            CopySource::Table { table_name, .. } if !to || self.protocol == SqlProtocol::Copy => {
                if let Some(namespace) = self.namespace(table_name) {
                    self.writes.push(Write {
                        namespace,
                        kind: WriteKind::Insert,
                        count: 1,
                    });
                }
            }
            CopySource::Query(query) => self.query(query),
            CopySource::Table { .. } => {}
        }
    }

    fn namespace(&self, name: &ObjectName) -> Option<Namespace> {
        let parts = names::parts(name)?;
        TableRef::table(self.database, &parts, None).namespace
    }

    pub(super) fn write_first(&mut self, frame: &Frame, kind: WriteKind) {
        if let Some(namespace) = frame.scope.tables.first().and_then(|t| t.namespace.clone()) {
            self.writes.push(Write {
                namespace,
                kind,
                count: 1,
            });
        }
    }
}

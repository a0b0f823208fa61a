//! Where a shape runs: the engine, and the collection or table.

use serde::{Deserialize, Serialize};

/// Which database engine a namespace lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// MongoDB.
    Mongodb,
    /// PostgreSQL.
    Postgresql,
}

/// Where a query runs: a MongoDB collection or a PostgreSQL table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Namespace {
    /// The engine.
    pub engine: Engine,
    /// MongoDB database, or PostgreSQL database.
    pub database: String,
    /// PostgreSQL schema (`public` when unqualified); `None` for MongoDB.
    pub schema: Option<String>,
    /// Collection or table name.
    pub collection: String,
}

impl Namespace {
    /// A MongoDB collection.
    pub fn mongo(database: impl Into<String>, collection: impl Into<String>) -> Self {
        Self {
            engine: Engine::Mongodb,
            database: database.into(),
            schema: None,
            collection: collection.into(),
        }
    }

    /// A PostgreSQL table.
    pub fn postgres(
        database: impl Into<String>,
        schema: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            engine: Engine::Postgresql,
            database: database.into(),
            schema: Some(schema.into()),
            collection: table.into(),
        }
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{}.{}.{}", self.database, schema, self.collection),
            None => write!(f, "{}.{}", self.database, self.collection),
        }
    }
}

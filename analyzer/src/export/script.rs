//! The parts every index script has, whatever its language: the indexes to add, each under a
//! comment with what it serves; the drop candidates, commented out; the rollback; and what
//! the script leaves to another one. A script format names its comment marker and its
//! statements ([`Script`]); the order and the wording are written here once.

use std::fmt::Write as _;

use crate::advise::{Advice, IndexSpec, Recommendation};
use crate::shape::{Engine, Namespace};

/// A script format: its engine, its comment marker and its create and drop statements.
pub(super) struct Script {
    pub(super) engine: Engine,
    pub(super) comment: &'static str,
    pub(super) create: fn(&IndexSpec, &str) -> String,
    pub(super) drop: fn(&Namespace, &str) -> String,
}

impl Script {
    /// The engine's recommendations, each under a comment with its summary; returns them.
    pub(super) fn creates<'a>(
        &self,
        out: &mut String,
        advice: &'a Advice,
    ) -> Vec<&'a Recommendation> {
        let comment = self.comment;
        let recommendations = super::recommendations_of(advice, self.engine);
        if recommendations.is_empty() {
            let _ = writeln!(out, "\n{comment} No {} index to add.", self.engine_name());
        }
        for recommendation in &recommendations {
            let _ = writeln!(
                out,
                "\n{comment} {}: {}\n{}",
                recommendation.index.namespace,
                super::summary(recommendation),
                (self.create)(&recommendation.index, &recommendation.name)
            );
        }
        recommendations
    }

    /// The engine's drop candidates, commented out: dropping is a decision for a person.
    pub(super) fn drops(&self, out: &mut String, advice: &Advice) {
        let comment = self.comment;
        let drops = super::drops_of(advice, self.engine);
        if drops.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{comment} Drop candidates: review before running.");
        for drop in drops {
            let _ = writeln!(
                out,
                "{comment} {}  {comment} {}",
                (self.drop)(&drop.index.namespace, &drop.name),
                drop.reason
            );
        }
    }

    /// A rollback section of commented drop statements, for scripts with no down migration.
    pub(super) fn commented_rollback(&self, out: &mut String, recommendations: &[&Recommendation]) {
        let comment = self.comment;
        if recommendations.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{comment} Rollback:");
        for recommendation in recommendations {
            let _ = writeln!(
                out,
                "{comment} {}",
                (self.drop)(&recommendation.index.namespace, &recommendation.name)
            );
        }
    }

    /// What the script leaves to the other engine's, and the advice's notes.
    pub(super) fn ending(&self, out: &mut String, advice: &Advice) {
        super::elsewhere(out, advice, self.engine, self.comment);
        super::notes_as_comments(out, advice, self.comment);
    }

    fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Mongodb => "MongoDB",
            Engine::Postgresql => "PostgreSQL",
        }
    }
}

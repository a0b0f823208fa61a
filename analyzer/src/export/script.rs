//! The parts every index script has, whatever its language: the indexes to add, each under a
//! comment with what it serves; the drop candidates, commented out; the rollback; and what
//! the script leaves to another one. A script format names its comment marker and its
//! statements ([`Script`]); the order and the wording are written here once.

use std::fmt::Write as _;

use crate::advise::{Advice, IndexSpec, Recommendation};
use crate::shape::{Engine, Namespace};

/// A script format: its engine, its opening lines, its comment marker and its create and
/// drop statements.
pub(super) struct Script {
    engine: Engine,
    header: &'static str,
    comment: &'static str,
    create: fn(&IndexSpec, &str) -> String,
    drop: fn(&Namespace, &str) -> String,
}

impl Script {
    pub(super) fn new(
        engine: Engine,
        header: &'static str,
        comment: &'static str,
        create: fn(&IndexSpec, &str) -> String,
        drop: fn(&Namespace, &str) -> String,
    ) -> Self {
        Self {
            engine,
            header,
            comment,
            create,
            drop,
        }
    }

    /// The whole script, its rollback a commented section (a script has no down migration).
    pub(super) fn render(&self, advice: &Advice) -> String {
        let mut out = String::new();
        let recommendations = self.creates(&mut out, advice);
        self.drops(&mut out, advice);
        let rollback = recommendations
            .iter()
            .map(|r| (self.drop)(&r.index.namespace, &r.name))
            .collect();
        self.commented_section(&mut out, "Rollback:", rollback);
        self.ending(&mut out, advice);
        out
    }

    /// The header, then the engine's recommendations, each under a comment with its summary;
    /// returns them.
    pub(super) fn creates<'a>(
        &self,
        out: &mut String,
        advice: &'a Advice,
    ) -> Vec<&'a Recommendation> {
        let comment = self.comment;
        out.push_str(self.header);
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
        let drops = super::drops_of(advice, self.engine)
            .into_iter()
            .map(|drop| {
                let statement = (self.drop)(&drop.index.namespace, &drop.name);
                format!("{statement}  {comment} {}", drop.reason)
            })
            .collect();
        self.commented_section(out, "Drop candidates: review before running.", drops);
    }

    /// A heading and its lines, all commented out; nothing when there are no lines.
    fn commented_section(&self, out: &mut String, heading: &str, lines: Vec<String>) {
        let comment = self.comment;
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(out, "\n{comment} {heading}");
        for line in lines {
            let _ = writeln!(out, "{comment} {line}");
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

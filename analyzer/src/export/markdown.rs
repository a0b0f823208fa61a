//! The Markdown report: what a hand-written index plan tries to be, with every number
//! measured.
//!
//! ## Layout
//! A summary table, then per index: the shapes it serves (rendered with names, operators and
//! types only) with count, p95 and total time, shapes that read the same grouped on one row
//! (same filter, other select lists), the statement, the improvement (planner evidence,
//! documents examined on a sample, or "estimated: not verified"), its net saving, its write
//! cost, and the write load of its namespace. Then the drop candidates with their evidence,
//! a rollback section, and the notes.

use std::fmt::Write as _;

use crate::advise::{
    Advice, DropCandidate, EvidenceMethod, Recommendation, Served, WriteCost, WriteCostBasis,
};
use crate::shape::Engine;

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// Inline code that survives backticks in the text.
fn code(text: &str) -> String {
    if text.contains('`') {
        format!("`` {text} ``")
    } else {
        format!("`{text}`")
    }
}

fn fence(engine: Engine) -> &'static str {
    match engine {
        Engine::Mongodb => "js",
        Engine::Postgresql => "sql",
    }
}

fn improvement(recommendation: &Recommendation) -> String {
    match &recommendation.evidence {
        Some(evidence) => {
            let change = if evidence.cost_before > 0.0 {
                format!(
                    " ({:+.1}%)",
                    (evidence.cost_after - evidence.cost_before) / evidence.cost_before * 100.0
                )
            } else {
                String::new()
            };
            match (&evidence.method, evidence.sample_size) {
                (EvidenceMethod::Sample, Some(size)) => format!(
                    "documents examined {:.0} → {:.0}{change}, measured on a sample of {size} documents",
                    evidence.cost_before, evidence.cost_after
                ),
                _ => format!(
                    "planner cost {:.2} → {:.2}{change}, measured with {}",
                    evidence.cost_before, evidence.cost_after, evidence.method
                ),
            }
        }
        None => "estimated: not verified".to_owned(),
    }
}

fn write_load(recommendation: &Recommendation) -> String {
    let load = &recommendation.write_load;
    format!(
        "{} inserts, {} updates, {} deletes against {} reads",
        load.inserts, load.updates, load.deletes, load.reads
    )
}

fn write_cost(cost: &WriteCost) -> String {
    let basis = match cost.basis {
        WriteCostBasis::Measured => {
            "measured: the inserts' time per row, shared by the row and its indexes"
        }
        WriteCostBasis::Setting => "the setting advice.index_write_cost_us",
        WriteCostBasis::Default => "the default: no insert was timed here",
        WriteCostBasis::Other(_) => "as read",
    };
    format!(
        "{} ms ({} writes × {:.3} ms, {basis})",
        super::ms(cost.total_ms),
        cost.writes,
        cost.per_write_ms
    )
}

fn section(out: &mut String, position: usize, recommendation: &Recommendation) {
    let namespace = &recommendation.index.namespace;
    let _ = writeln!(
        out,
        "\n## {position}. {} on {}\n",
        code(&recommendation.name),
        code(&namespace.to_string())
    );
    out.push_str("| Shape | Count | p95 | Total |\n|---|---:|---:|---:|\n");
    for (shape, group) in grouped(&recommendation.serves) {
        let count = group
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.count));
        let total: f64 = group.iter().map(|s| s.total_ms).sum();
        let p95 = group.iter().map(|s| s.p95_ms).fold(0.0, f64::max);
        let variants = match group.len() {
            1 => String::new(),
            n => format!(" ({n} variants: other select lists)"),
        };
        let _ = writeln!(
            out,
            "| {}{variants} | {count} | {} ms | {} ms |",
            cell(shape),
            super::ms(p95),
            super::ms(total)
        );
    }
    let _ = writeln!(
        out,
        "\n```{}\n{}\n```\n",
        fence(namespace.engine),
        super::statement(recommendation)
    );
    let _ = writeln!(out, "- Improvement: {}", improvement(recommendation));
    let _ = writeln!(
        out,
        "- Net saving: {} ms (time saved less its write cost)",
        super::ms(recommendation.net_saving_ms)
    );
    let _ = writeln!(
        out,
        "- Write cost: {}",
        write_cost(&recommendation.write_cost)
    );
    let _ = writeln!(
        out,
        "- Write load on {}: {}",
        code(&namespace.to_string()),
        write_load(recommendation)
    );
    let load = &recommendation.write_load;
    let writes = load
        .inserts
        .saturating_add(load.updates)
        .saturating_add(load.deletes);
    if writes > load.reads {
        out.push_str(
            "- Mostly written: every insert, and every update of an indexed field, also \
             updates this index. Weigh that before building it.\n",
        );
    }
}

/// Served shapes that read the same (the same rendering: same filter and sort, another
/// select list), heaviest group first.
fn grouped(serves: &[Served]) -> Vec<(&str, Vec<&Served>)> {
    let mut groups: Vec<(&str, Vec<&Served>)> = Vec::new();
    for served in serves {
        match groups.iter_mut().find(|(shape, _)| *shape == served.shape) {
            Some((_, group)) => group.push(served),
            None => groups.push((&served.shape, vec![served])),
        }
    }
    groups
}

fn drop_line(out: &mut String, drop: &DropCandidate) {
    let _ = writeln!(
        out,
        "- {} on {}: {}\n\n  ```{}\n  {}\n  ```\n\n  Rollback: {}",
        code(&drop.name),
        code(&drop.index.namespace.to_string()),
        cell(&drop.reason),
        fence(drop.index.namespace.engine),
        super::drop_statement(drop),
        code(&super::recreate_statement(drop))
    );
}

/// The advice as a Markdown report.
pub(crate) fn render(advice: &Advice) -> String {
    let mut out = String::from("# Index advice\n\n");
    out.push_str(
        "Measured by indextap from live traffic: every count and time below was observed. \
         Shapes show names, operators and value types, never values.\n",
    );
    if advice.recommendations.is_empty() {
        out.push_str("\nNo index to add.\n");
    } else {
        out.push_str("\n| # | Index | On | Shapes | Executions | Total |\n");
        out.push_str("|---:|---|---|---:|---:|---:|\n");
        for (position, recommendation) in advice.recommendations.iter().enumerate() {
            let executions = recommendation
                .serves
                .iter()
                .fold(0u64, |sum, served| sum.saturating_add(served.count));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} ms |",
                position + 1,
                cell(&code(&recommendation.name)),
                cell(&recommendation.index.namespace.to_string()),
                recommendation.serves.len(),
                executions,
                super::ms(recommendation.total_ms())
            );
        }
    }
    for (position, recommendation) in advice.recommendations.iter().enumerate() {
        section(&mut out, position + 1, recommendation);
    }
    out.push_str("\n## Drop candidates\n\n");
    if advice.drops.is_empty() {
        out.push_str(
            "None: no existing index is a prefix of another, or unused long enough to tell.\n",
        );
    } else {
        out.push_str("Existing indexes that another existing index makes redundant, or that nothing used over the window while writes maintained them. Review before dropping.\n\n");
        for drop in &advice.drops {
            drop_line(&mut out, drop);
        }
    }
    out.push_str("\n## Rollback\n");
    if advice.recommendations.is_empty() {
        out.push_str("\nNothing to roll back.\n");
    }
    for engine in [Engine::Mongodb, Engine::Postgresql] {
        let lines: Vec<String> = advice
            .recommendations
            .iter()
            .filter(|r| r.index.namespace.engine == engine)
            .map(super::rollback_statement)
            .collect();
        if !lines.is_empty() {
            let _ = write!(out, "\n```{}\n{}\n```\n", fence(engine), lines.join("\n"));
        }
    }
    if !advice.notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for note in &advice.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

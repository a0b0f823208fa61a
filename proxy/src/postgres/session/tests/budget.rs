//! Large statement texts are charged to the inspection budget from their copy until the last
//! holder (a pending run, a prepared statement, an analyzer batch) drops them.

use super::*;
use crate::budget::InspectBudget;

/// A statement about `bytes` long.
fn long_select(bytes: usize) -> String {
    format!("SELECT '{}'", "x".repeat(bytes))
}

fn budgeted(limit: usize) -> (Harness, InspectBudget) {
    let mut h = Harness::new();
    let budget = InspectBudget::new(limit, Default::default());
    h.events.budget = budget.clone();
    (h, budget)
}

#[test]
fn a_long_query_is_charged_once_until_its_statements_are_analysed() {
    let (mut h, budget) = budgeted(100_000);
    let text = format!("{}; SELECT 2", long_select(40_000));
    h.client([query(&text)]);
    assert_eq!(budget.held(), text.len() as u64, "charged while it runs");
    // Small ones are not charged.
    h.server([command_complete("SELECT 1"), command_complete("SELECT 1")]);
    h.server([ready(b'I')]).client([query("SELECT 3")]);
    assert_eq!(h.events.observations.len(), 2);
    assert_eq!(
        budget.held(),
        text.len() as u64,
        "both statements share one copy"
    );
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    assert_eq!(h.events.held.len(), 2, "each observation holds the charge");
    h.events.observations.clear();
    h.events.held.clear();
    assert_eq!(budget.held(), 0);
}

#[test]
fn a_long_prepared_statement_is_charged_while_kept() {
    let (mut h, budget) = budgeted(100_000);
    let text = long_select(40_000);
    let run = || vec![bind("", "s", &[]), execute("", 0), sync()];
    h.client([parse("s", &text)]).client(run()).client(run());
    assert_eq!(budget.held(), text.len() as u64);
    let done = || bound([command_complete("SELECT 1"), ready(b'I')]);
    h.server(done()).server(done());
    assert_eq!(h.texts(), vec![text.clone(), text.clone()]);
    h.events.observations.clear();
    h.events.held.clear();
    assert_eq!(
        budget.held(),
        text.len() as u64,
        "the statement still holds it"
    );
    h.client([close(b'S', "s"), sync()]);
    assert_eq!(budget.held(), 0, "closed: given back");

    h.client([parse("t", &text)]);
    assert_eq!(budget.held(), text.len() as u64);
    drop(h);
    assert_eq!(budget.held(), 0, "released with the session");
}

#[test]
fn a_long_text_without_room_is_counted_not_captured() {
    let (mut h, budget) = budgeted(100_000);
    let others = budget.reserve(70_000).expect("room");
    let text = long_select(40_000);
    h.client([query(&text)]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    h.assert_unreported("inspect_budget_exhausted", 1);
    // Pairing is kept: the next statement is reported with its own outcome.
    h.client([
        parse("s", &text),
        bind("", "s", &[]),
        execute("", 0),
        sync(),
    ]);
    h.server(bound([command_complete("SELECT 1"), ready(b'I')]));
    h.assert_unreported("inspect_budget_exhausted", 2);
    assert_eq!(h.counted("unknown_statement"), 1);
    h.client([query("SELECT 2")]);
    h.server([command_complete("SELECT 1"), ready(b'I')]);
    assert_eq!(h.texts(), vec!["SELECT 2".to_owned()]);
    assert_eq!(budget.held(), 70_000);
    drop(others);
    assert_eq!(budget.held(), 0);
}

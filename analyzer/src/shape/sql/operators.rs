//! The comparison operators: the name a leaf records, the index class, and how each reads
//! with its operands swapped (`5 < x` is `x > 5`).

use sqlparser::ast::{BinaryOperator, Expr};

use super::constants::like_class;
use crate::shape::OpClass;

/// An operator, its class, and how it reads with its operands swapped (`5 < x` is
/// `x > 5`); `None` when the column must be on the left (`LIKE`, `= ANY`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Op {
    /// The operator as a leaf records it.
    pub(super) name: &'static str,
    /// How an index can serve it.
    pub(super) class: OpClass,
    /// Its name with the operands swapped.
    pub(super) swapped: Option<&'static str>,
}

pub(super) const fn op(name: &'static str, class: OpClass) -> Op {
    Op {
        name,
        class,
        swapped: None,
    }
}

pub(super) const fn symmetric(name: &'static str, class: OpClass, swapped: &'static str) -> Op {
    Op {
        name,
        class,
        swapped: Some(swapped),
    }
}

/// The comparison operators, with how each reads swapped.
pub(super) fn binary(operator: &BinaryOperator, right: &Expr) -> Option<Op> {
    use OpClass::*;
    Some(match operator {
        BinaryOperator::Eq => symmetric("=", Eq, "="),
        BinaryOperator::NotEq => symmetric("<>", Ne, "<>"),
        BinaryOperator::Lt => symmetric("<", Range, ">"),
        BinaryOperator::Gt => symmetric(">", Range, "<"),
        BinaryOperator::LtEq => symmetric("<=", Range, ">="),
        BinaryOperator::GtEq => symmetric(">=", Range, "<="),
        BinaryOperator::AtArrow => op("@>", JsonContains),
        // `$1 <@ payload` is `payload @> $1`; `payload <@ $1` no GIN index serves.
        BinaryOperator::ArrowAt => symmetric("<@", NotIndexable, "@>"),
        BinaryOperator::Question => op("?", JsonContains),
        BinaryOperator::QuestionAnd => op("?&", JsonContains),
        BinaryOperator::QuestionPipe => op("?|", JsonContains),
        BinaryOperator::AtAt => symmetric("@@", Text, "@@"),
        BinaryOperator::PGLikeMatch => op("LIKE", like_class(right)),
        BinaryOperator::PGILikeMatch => op("ILIKE", Infix),
        BinaryOperator::PGNotLikeMatch => op("NOT LIKE", Ne),
        BinaryOperator::PGNotILikeMatch => op("NOT ILIKE", Ne),
        BinaryOperator::PGRegexMatch => op("~", Infix),
        BinaryOperator::PGRegexIMatch => op("~*", Infix),
        BinaryOperator::PGRegexNotMatch => op("!~", Ne),
        BinaryOperator::PGRegexNotIMatch => op("!~*", Ne),
        BinaryOperator::PGStartsWith => op("^@", Prefix),
        _ => return None,
    })
}

/// `<@` read the other way round is `@>`, which a GIN index serves.
pub(super) fn swapped_class(op: Op) -> OpClass {
    match op.name {
        "<@" => OpClass::JsonContains,
        _ => op.class,
    }
}

/// `x = ANY(...)`, `x <> ALL(...)` and their kin.
pub(super) fn quantified(compare: &BinaryOperator, any: bool) -> Op {
    use OpClass::*;
    match (compare, any) {
        (BinaryOperator::Eq, true) => op("= ANY", In),
        (BinaryOperator::NotEq, true) => op("<> ANY", Ne),
        (BinaryOperator::NotEq, false) => op("<> ALL", Ne),
        (BinaryOperator::Lt, true) => op("< ANY", Range),
        (BinaryOperator::LtEq, true) => op("<= ANY", Range),
        (BinaryOperator::Gt, true) => op("> ANY", Range),
        (BinaryOperator::GtEq, true) => op(">= ANY", Range),
        (BinaryOperator::Lt, false) => op("< ALL", Range),
        (BinaryOperator::LtEq, false) => op("<= ALL", Range),
        (BinaryOperator::Gt, false) => op("> ALL", Range),
        (BinaryOperator::GtEq, false) => op(">= ALL", Range),
        (_, true) => op("ANY", NotIndexable),
        (_, false) => op("ALL", NotIndexable),
    }
}

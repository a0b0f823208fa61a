//! The comparison operators: the name a leaf records, the index class, and how each reads
//! with its operands swapped (`5 < x` is `x > 5`).

use sqlparser::ast::{BinaryOperator, Expr};

use super::constants::like_class;
use crate::shape::{OpClass, SqlOperator};

/// An operator, its class, and how it reads with its operands swapped (`5 < x` is
/// `x > 5`); `None` when the column must be on the left (`LIKE`, `= ANY`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Op {
    /// The operator as a leaf records it.
    pub(super) name: SqlOperator,
    /// How an index can serve it.
    pub(super) class: OpClass,
    /// Its name with the operands swapped.
    pub(super) swapped: Option<SqlOperator>,
}

pub(super) const fn op(name: SqlOperator, class: OpClass) -> Op {
    Op {
        name,
        class,
        swapped: None,
    }
}

pub(super) const fn symmetric(name: SqlOperator, class: OpClass, swapped: SqlOperator) -> Op {
    Op {
        name,
        class,
        swapped: Some(swapped),
    }
}

/// The comparison operators, with how each reads swapped.
pub(super) fn binary(operator: &BinaryOperator, right: &Expr) -> Option<Op> {
    use OpClass::*;
    use SqlOperator as S;
    Some(match operator {
        BinaryOperator::Eq => symmetric(S::Eq, Eq, S::Eq),
        BinaryOperator::NotEq => symmetric(S::NotEq, Ne, S::NotEq),
        BinaryOperator::Lt => symmetric(S::Lt, Range, S::Gt),
        BinaryOperator::Gt => symmetric(S::Gt, Range, S::Lt),
        BinaryOperator::LtEq => symmetric(S::LtEq, Range, S::GtEq),
        BinaryOperator::GtEq => symmetric(S::GtEq, Range, S::LtEq),
        BinaryOperator::AtArrow => op(S::Contains, JsonContains),
        // `$1 <@ payload` is `payload @> $1`; `payload <@ $1` no GIN index serves.
        BinaryOperator::ArrowAt => symmetric(S::ContainedBy, NotIndexable, S::Contains),
        BinaryOperator::Question => op(S::HasKey, JsonContains),
        BinaryOperator::QuestionAnd => op(S::HasAllKeys, JsonContains),
        BinaryOperator::QuestionPipe => op(S::HasAnyKey, JsonContains),
        BinaryOperator::AtAt => symmetric(S::TextMatch, Text, S::TextMatch),
        BinaryOperator::PGLikeMatch => op(S::Like, like_class(right)),
        BinaryOperator::PGILikeMatch => op(S::ILike, Infix),
        BinaryOperator::PGNotLikeMatch => op(S::NotLike, Ne),
        BinaryOperator::PGNotILikeMatch => op(S::NotILike, Ne),
        BinaryOperator::PGRegexMatch => op(S::RegexMatch, Infix),
        BinaryOperator::PGRegexIMatch => op(S::RegexIMatch, Infix),
        BinaryOperator::PGRegexNotMatch => op(S::RegexNotMatch, Ne),
        BinaryOperator::PGRegexNotIMatch => op(S::RegexNotIMatch, Ne),
        BinaryOperator::PGStartsWith => op(S::StartsWith, Prefix),
        _ => return None,
    })
}

/// `<@` read the other way round is `@>`, which a GIN index serves.
pub(super) fn swapped_class(op: Op) -> OpClass {
    match op.name {
        SqlOperator::ContainedBy => OpClass::JsonContains,
        _ => op.class,
    }
}

/// `x = ANY(...)`, `x <> ALL(...)` and their kin.
pub(super) fn quantified(compare: &BinaryOperator, any: bool) -> Op {
    use OpClass::*;
    use SqlOperator as S;
    match (compare, any) {
        (BinaryOperator::Eq, true) => op(S::EqAny, In),
        (BinaryOperator::NotEq, true) => op(S::NotEqAny, Ne),
        (BinaryOperator::NotEq, false) => op(S::NotEqAll, Ne),
        (BinaryOperator::Lt, true) => op(S::LtAny, Range),
        (BinaryOperator::LtEq, true) => op(S::LtEqAny, Range),
        (BinaryOperator::Gt, true) => op(S::GtAny, Range),
        (BinaryOperator::GtEq, true) => op(S::GtEqAny, Range),
        (BinaryOperator::Lt, false) => op(S::LtAll, Range),
        (BinaryOperator::LtEq, false) => op(S::LtEqAll, Range),
        (BinaryOperator::Gt, false) => op(S::GtAll, Range),
        (BinaryOperator::GtEq, false) => op(S::GtEqAll, Range),
        (_, true) => op(S::Any, NotIndexable),
        (_, false) => op(S::All, NotIndexable),
    }
}

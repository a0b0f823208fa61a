//! WHERE and ON expressions → [`Cond`]: each comparison becomes a leaf with its operator
//! class, on the table whose column it tests.
//!
//! | SQL                                             | operator, class            |
//! |-------------------------------------------------|----------------------------|
//! | `=`                                             | `=`, Eq                    |
//! | `IN (...)`, `= ANY($1)`                         | `IN` / `= ANY`, In         |
//! | `<`, `>`, `<=`, `>=`, `BETWEEN`                 | as written, Range          |
//! | `IS NULL`, `IS NOT NULL`                        | IsNull, NotNull            |
//! | `<>`, `!=`, `NOT IN`, `NOT LIKE`, `<> ALL(..)`  | Ne                         |
//! | `LIKE 'abc%'`                                   | `LIKE`, Prefix             |
//! | `LIKE '%abc'`, `LIKE $1`, `ILIKE`, `~`, `~*`    | Infix (btree cannot serve) |
//! | jsonb `@>`, `?`, `?|`, `?&`                     | JsonContains               |
//! | `@@`                                            | Text                       |
//! | `a.x = b.y` across tables                       | `JOIN`, Eq on both sides   |
//! | `x IN (SELECT ...)`, expressions of two columns | NotIndexable               |
//!
//! A value side that is a literal or parameter has type [`ValueType::Param`] (the
//! pg_stat_statements view: `= 5` and `= $1` are one shape); any other expression without a
//! column of this scope (`now()`, an outer column, a scalar subquery) has
//! [`ValueType::Other`]: the index on the column serves it all the same. A bare boolean
//! column (`WHERE is_active`, `NOT is_active`) is `is_active = true|false`.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator};

use super::constants::{bool_literal, enum_tokens, like_class, Kept};
use super::names::Scope;
use super::operand::{columns, is_literal, operand, strip_nested, Operand};
use super::operators::{binary, op, quantified, swapped_class, symmetric, Op};
use super::predicate::{leaf, not_indexable, Cond};
use crate::shape::{Constant, OpClass, SqlOperator as S, Target, ValueType};

/// Turns the expressions of one query level into conditions.
pub(super) struct Classifier<'a> {
    /// The FROM list of that level.
    pub(super) scope: &'a Scope,
    /// Literals to leave as written in the normalized statement.
    pub(super) kept: &'a mut Kept,
}

impl Classifier<'_> {
    /// The condition an expression states.
    pub(super) fn cond(&mut self, expr: &Expr) -> Cond {
        let expr = strip_nested(expr);
        match expr {
            Expr::BinaryOp {
                op: BinaryOperator::And,
                ..
            } => Cond::And(self.chain(expr, BinaryOperator::And)),
            Expr::BinaryOp {
                op: BinaryOperator::Or,
                ..
            } => Cond::Or(self.chain(expr, BinaryOperator::Or)),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr: inner,
            } => match self.boolean_column(inner, false) {
                Some(leaf) => leaf,
                None => match self.cond(inner) {
                    Cond::Free => Cond::Free,
                    negated => Cond::Not(Box::new(negated)),
                },
            },
            _ => self.comparison(expr),
        }
    }

    /// The operands of a chain of one operator (`a AND b AND c`), flattened without
    /// recursion: such chains are as deep as they are long.
    fn chain(&mut self, expr: &Expr, operator: BinaryOperator) -> Vec<Cond> {
        let mut operands = Vec::new();
        let mut pending = vec![expr];
        while let Some(next) = pending.pop() {
            match strip_nested(next) {
                Expr::BinaryOp { left, op, right } if *op == operator => {
                    pending.push(right);
                    pending.push(left);
                }
                other => operands.push(other),
            }
        }
        operands
            .into_iter()
            .map(|operand| self.cond(operand))
            .collect()
    }

    fn comparison(&mut self, expr: &Expr) -> Cond {
        use OpClass::*;
        match expr {
            Expr::IsNull(inner) => self.unary(inner, op(S::IsNull, IsNull)),
            Expr::IsNotNull(inner) => self.unary(inner, op(S::IsNotNull, NotNull)),
            Expr::IsTrue(inner) => self.boolean(inner, true),
            Expr::IsFalse(inner) => self.boolean(inner, false),
            Expr::IsNotTrue(inner) => self.unary(inner, op(S::IsNotTrue, Ne)),
            Expr::IsNotFalse(inner) => self.unary(inner, op(S::IsNotFalse, Ne)),
            Expr::IsUnknown(inner) => self.unary(inner, op(S::IsUnknown, NotIndexable)),
            Expr::IsNotUnknown(inner) => self.unary(inner, op(S::IsNotUnknown, NotIndexable)),
            Expr::IsDistinctFrom(left, right) => self.compare(
                left,
                right,
                symmetric(S::IsDistinctFrom, Ne, S::IsDistinctFrom),
            ),
            // PostgreSQL cannot use an index for IS NOT DISTINCT FROM.
            Expr::IsNotDistinctFrom(left, right) => self.compare(
                left,
                right,
                symmetric(S::IsNotDistinctFrom, NotIndexable, S::IsNotDistinctFrom),
            ),
            Expr::InList {
                expr,
                list,
                negated,
            } => self.in_list(expr, list, *negated),
            Expr::InSubquery { expr, negated, .. } => {
                let name = if *negated { S::NotIn } else { S::In };
                self.unary(expr, op(name, NotIndexable))
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => self.between(expr, low, high, *negated),
            Expr::BinaryOp { left, op, right } => match binary(op, right) {
                Some(op) => self.compare(left, right, op),
                None => self.expression(expr),
            },
            Expr::Like {
                negated,
                any,
                expr,
                pattern,
                ..
            } => {
                let op = match (negated, any) {
                    (true, _) => op(S::NotLike, Ne),
                    (false, true) => op(S::LikeAny, Infix),
                    (false, false) => op(S::Like, like_class(pattern)),
                };
                self.compare(expr, pattern, op)
            }
            Expr::ILike {
                negated,
                expr,
                pattern,
                ..
            } => self.compare(expr, pattern, infix_match(*negated, S::ILike, S::NotILike)),
            Expr::SimilarTo {
                negated,
                expr,
                pattern,
                ..
            } => self.compare(
                expr,
                pattern,
                infix_match(*negated, S::SimilarTo, S::NotSimilarTo),
            ),
            Expr::RLike { expr, pattern, .. } => {
                self.compare(expr, pattern, op(S::RegexMatch, Infix))
            }
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            } => self.quantified_comparison(left, compare_op, right, true),
            Expr::AllOp {
                left,
                compare_op,
                right,
            } => self.quantified_comparison(left, compare_op, right, false),
            // The subquery is lowered on its own; to this level it is not indexable, and it
            // names no column here.
            Expr::Exists { .. } => Cond::Free,
            _ => self.expression(expr),
        }
    }

    /// `x = ANY(...)`, `x <> ALL(...)` and their kin.
    fn quantified_comparison(
        &mut self,
        left: &Expr,
        compare: &BinaryOperator,
        right: &Expr,
        any: bool,
    ) -> Cond {
        let op = quantified(compare, any);
        if matches!(strip_nested(right), Expr::Subquery(_)) {
            return self.unusable(left, op);
        }
        self.compare(left, right, op)
    }

    /// A comparison of two operands.
    fn compare(&mut self, left: &Expr, right: &Expr, op: Op) -> Cond {
        let left_side = operand(self.scope, left, self.kept);
        let right_side = operand(self.scope, right, self.kept);
        match (left_side, right_side) {
            (Operand::Target { table, target }, Operand::Value(value_type)) => {
                let constant = self.constant(op, right);
                leaf(table, target, op.name, op.class, value_type, constant)
            }
            (Operand::Value(value_type), Operand::Target { table, target }) => match op.swapped {
                Some(name) => {
                    let constant = self.constant(op, left);
                    leaf(table, target, name, swapped_class(op), value_type, constant)
                }
                None => leaf(
                    table,
                    target,
                    op.name,
                    OpClass::NotIndexable,
                    value_type,
                    None,
                ),
            },
            (
                Operand::Target {
                    table: left_table,
                    target: left_target,
                },
                Operand::Target {
                    table: right_table,
                    target: right_target,
                },
            ) => {
                if left_table == right_table {
                    return leaf(
                        left_table,
                        left_target,
                        op.name,
                        OpClass::NotIndexable,
                        ValueType::Other,
                        None,
                    );
                }
                let (name, class) = match op.class {
                    OpClass::Eq => (S::Join, OpClass::Eq),
                    _ => (op.name, OpClass::NotIndexable),
                };
                let swapped = if op.class == OpClass::Eq {
                    S::Join
                } else {
                    op.swapped.unwrap_or(op.name)
                };
                Cond::And(vec![
                    leaf(left_table, left_target, name, class, ValueType::Other, None),
                    leaf(
                        right_table,
                        right_target,
                        swapped,
                        class,
                        ValueType::Other,
                        None,
                    ),
                ])
            }
            (Operand::Value(_), Operand::Value(_)) => Cond::Free,
            (left_side, right_side) => {
                let mut targets = left_side.into_targets();
                targets.extend(right_side.into_targets());
                not_indexable(targets, op.name)
            }
        }
    }

    /// The partial-index constant a literal operand carries, for `=` (booleans and enum
    /// tokens) and `<>` (booleans). Kept tokens are recorded so normalization leaves them.
    fn constant(&mut self, op: Op, value: &Expr) -> Option<Constant> {
        if !matches!(op.name, S::Eq | S::NotEq) {
            return None;
        }
        if let Some(value) = bool_literal(value) {
            return Some(Constant::Bool(value));
        }
        if op.name != S::Eq {
            return None;
        }
        let (tokens, spans) = enum_tokens(std::iter::once(value))?;
        spans.into_iter().for_each(|span| self.kept.keep(span));
        Some(Constant::Tokens(tokens))
    }

    fn in_list(&mut self, expr: &Expr, list: &[Expr], negated: bool) -> Cond {
        let (name, class) = if negated {
            (S::NotIn, OpClass::Ne)
        } else {
            (S::In, OpClass::In)
        };
        match operand(self.scope, expr, self.kept) {
            Operand::Target { table, target } => {
                let value_type = if list.iter().all(is_literal) {
                    ValueType::Param
                } else if list
                    .iter()
                    .any(|item| !columns(self.scope, item).is_empty())
                {
                    return leaf(
                        table,
                        target,
                        name,
                        OpClass::NotIndexable,
                        ValueType::Other,
                        None,
                    );
                } else {
                    ValueType::Other
                };
                let constant = match negated {
                    true => None,
                    false => enum_tokens(list.iter()).map(|(tokens, spans)| {
                        spans.into_iter().for_each(|span| self.kept.keep(span));
                        Constant::Tokens(tokens)
                    }),
                };
                leaf(table, target, name, class, value_type, constant)
            }
            Operand::Value(_) => Cond::Free,
            opaque @ Operand::Opaque(_) => not_indexable(opaque.into_targets(), name),
        }
    }

    fn between(&mut self, expr: &Expr, low: &Expr, high: &Expr, negated: bool) -> Cond {
        let op = if negated {
            op(S::NotBetween, OpClass::Ne)
        } else {
            op(S::Between, OpClass::Range)
        };
        let bounds = [
            operand(self.scope, low, self.kept),
            operand(self.scope, high, self.kept),
        ];
        let value_type = match bounds {
            [Operand::Value(ValueType::Param), Operand::Value(ValueType::Param)] => {
                ValueType::Param
            }
            [Operand::Value(_), Operand::Value(_)] => ValueType::Other,
            _ => return self.unusable(expr, op),
        };
        self.on_operand(expr, op, value_type)
    }

    /// `op` on `expr` alone: a leaf on a column, nothing on a value, not indexable otherwise.
    fn on_operand(&mut self, expr: &Expr, op: Op, value_type: ValueType) -> Cond {
        match operand(self.scope, expr, self.kept) {
            Operand::Target { table, target } => {
                leaf(table, target, op.name, op.class, value_type, None)
            }
            Operand::Value(_) => Cond::Free,
            opaque @ Operand::Opaque(_) => not_indexable(opaque.into_targets(), op.name),
        }
    }

    /// `op` on `expr` where no index could serve it (a subquery, a bound over columns).
    fn unusable(&mut self, expr: &Expr, op: Op) -> Cond {
        self.unary(
            expr,
            Op {
                class: OpClass::NotIndexable,
                ..op
            },
        )
    }

    /// A test on one operand (`IS NULL`).
    fn unary(&mut self, expr: &Expr, op: Op) -> Cond {
        let value_type = match op.class {
            OpClass::IsNull | OpClass::NotNull => ValueType::None,
            _ => ValueType::Other,
        };
        self.on_operand(expr, op, value_type)
    }

    /// `x IS TRUE` / `x IS FALSE`: `x = true|false` for a column.
    fn boolean(&mut self, expr: &Expr, value: bool) -> Cond {
        match self.boolean_column(expr, value) {
            Some(leaf) => leaf,
            None => self.unary(
                expr,
                op(
                    if value { S::IsTrue } else { S::IsFalse },
                    OpClass::NotIndexable,
                ),
            ),
        }
    }

    /// A plain column used as a condition, read as `column = value`.
    fn boolean_column(&mut self, expr: &Expr, value: bool) -> Option<Cond> {
        match operand(self.scope, expr, self.kept) {
            Operand::Target {
                table,
                target: target @ Target::Field(_),
            } => Some(leaf(
                table,
                target,
                S::Eq,
                OpClass::Eq,
                ValueType::Param,
                Some(Constant::Bool(value)),
            )),
            _ => None,
        }
    }

    /// Any other boolean expression: a column alone is `= true`; one over columns no index
    /// serves; one over no column constrains nothing.
    fn expression(&mut self, expr: &Expr) -> Cond {
        if let Some(leaf) = self.boolean_column(expr, true) {
            return leaf;
        }
        match operand(self.scope, expr, self.kept) {
            Operand::Value(_) => Cond::Free,
            other => not_indexable(other.into_targets(), S::Expression),
        }
    }
}

/// A pattern match no index range serves (`ILIKE`, `SIMILAR TO`): infix, or `Ne` when negated.
fn infix_match(negated: bool, matches: S, not_matches: S) -> Op {
    if negated {
        op(not_matches, OpClass::Ne)
    } else {
        op(matches, OpClass::Infix)
    }
}

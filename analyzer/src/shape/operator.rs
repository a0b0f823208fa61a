//! A leaf's operator, as the lowering writes it: MongoDB's `$gt`, SQL's `>=`, the `JOIN` of
//! a join condition.
//!
//! The operator is part of the canonical JSON (and so of the shape id), and partial-index
//! constants are bound to a leaf by it, so it serialises and sorts as its spelling. What an
//! index can do with it is the leaf's [`OpClass`](super::OpClass), not the operator: the
//! advisor reads the operator only to tell a join condition apart.

use crate::spelling::{closed, spelled_traits};

closed! {
    /// A MongoDB query operator the lowering writes.
    pub enum MongoOperator {
        /// `$eq`, explicit or implicit (`{f: v}`).
        Eq => "$eq",
        /// `$ne`.
        Ne => "$ne",
        /// `$gt`.
        Gt => "$gt",
        /// `$gte`.
        Gte => "$gte",
        /// `$lt`.
        Lt => "$lt",
        /// `$lte`.
        Lte => "$lte",
        /// `$in`.
        In => "$in",
        /// `$nin`.
        Nin => "$nin",
        /// `$all`.
        All => "$all",
        /// `$exists`.
        Exists => "$exists",
        /// `$type`.
        Type => "$type",
        /// `$regex`, or a regex literal.
        Regex => "$regex",
        /// `$text`.
        Text => "$text",
        /// `$size`.
        Size => "$size",
        /// `$mod`.
        Mod => "$mod",
        /// `$bitsAllSet`.
        BitsAllSet => "$bitsAllSet",
        /// `$bitsAllClear`.
        BitsAllClear => "$bitsAllClear",
        /// `$bitsAnySet`.
        BitsAnySet => "$bitsAnySet",
        /// `$bitsAnyClear`.
        BitsAnyClear => "$bitsAnyClear",
        /// `$geoWithin`.
        GeoWithin => "$geoWithin",
        /// `$geoIntersects`.
        GeoIntersects => "$geoIntersects",
        /// `$near`.
        Near => "$near",
        /// `$nearSphere`.
        NearSphere => "$nearSphere",
        /// `$within` (deprecated `$geoWithin`).
        Within => "$within",
        /// `$expr`.
        Expr => "$expr",
        /// `$where`.
        Where => "$where",
        /// `$jsonSchema`.
        JsonSchema => "$jsonSchema",
        /// `$sampleRate`.
        SampleRate => "$sampleRate",
        /// `$alwaysTrue`.
        AlwaysTrue => "$alwaysTrue",
        /// `$alwaysFalse`.
        AlwaysFalse => "$alwaysFalse",
    }
}

closed! {
    /// A SQL comparison the lowering writes.
    pub enum SqlOperator {
        /// The equality a join condition puts on each side's column (`a.x = b.y`,
        /// `USING (x)`). Declared here once: the SQL lowering writes it and the advisor
        /// reads it.
        Join => "JOIN",
        /// `=`.
        Eq => "=",
        /// `<>`, `!=`.
        NotEq => "<>",
        /// `<`.
        Lt => "<",
        /// `>`.
        Gt => ">",
        /// `<=`.
        LtEq => "<=",
        /// `>=`.
        GtEq => ">=",
        /// `BETWEEN`.
        Between => "BETWEEN",
        /// `NOT BETWEEN`.
        NotBetween => "NOT BETWEEN",
        /// `IN (...)`.
        In => "IN",
        /// `NOT IN (...)`.
        NotIn => "NOT IN",
        /// `= ANY(...)`.
        EqAny => "= ANY",
        /// `<> ANY(...)`.
        NotEqAny => "<> ANY",
        /// `<> ALL(...)`.
        NotEqAll => "<> ALL",
        /// `< ANY(...)`.
        LtAny => "< ANY",
        /// `<= ANY(...)`.
        LtEqAny => "<= ANY",
        /// `> ANY(...)`.
        GtAny => "> ANY",
        /// `>= ANY(...)`.
        GtEqAny => ">= ANY",
        /// `< ALL(...)`.
        LtAll => "< ALL",
        /// `<= ALL(...)`.
        LtEqAll => "<= ALL",
        /// `> ALL(...)`.
        GtAll => "> ALL",
        /// `>= ALL(...)`.
        GtEqAll => ">= ALL",
        /// Another comparison quantified with `ANY`.
        Any => "ANY",
        /// Another comparison quantified with `ALL`.
        All => "ALL",
        /// `IS NULL`.
        IsNull => "IS NULL",
        /// `IS NOT NULL`.
        IsNotNull => "IS NOT NULL",
        /// `IS TRUE` on an expression that is not a column.
        IsTrue => "IS TRUE",
        /// `IS FALSE` on an expression that is not a column.
        IsFalse => "IS FALSE",
        /// `IS NOT TRUE`.
        IsNotTrue => "IS NOT TRUE",
        /// `IS NOT FALSE`.
        IsNotFalse => "IS NOT FALSE",
        /// `IS UNKNOWN`.
        IsUnknown => "IS UNKNOWN",
        /// `IS NOT UNKNOWN`.
        IsNotUnknown => "IS NOT UNKNOWN",
        /// `IS DISTINCT FROM`.
        IsDistinctFrom => "IS DISTINCT FROM",
        /// `IS NOT DISTINCT FROM`.
        IsNotDistinctFrom => "IS NOT DISTINCT FROM",
        /// `LIKE`.
        Like => "LIKE",
        /// `NOT LIKE`.
        NotLike => "NOT LIKE",
        /// `LIKE ANY(...)`.
        LikeAny => "LIKE ANY",
        /// `ILIKE`.
        ILike => "ILIKE",
        /// `NOT ILIKE`.
        NotILike => "NOT ILIKE",
        /// `SIMILAR TO`.
        SimilarTo => "SIMILAR TO",
        /// `NOT SIMILAR TO`.
        NotSimilarTo => "NOT SIMILAR TO",
        /// `~`.
        RegexMatch => "~",
        /// `~*`.
        RegexIMatch => "~*",
        /// `!~`.
        RegexNotMatch => "!~",
        /// `!~*`.
        RegexNotIMatch => "!~*",
        /// `^@`, starts with.
        StartsWith => "^@",
        /// jsonb `@>`.
        Contains => "@>",
        /// jsonb `<@`.
        ContainedBy => "<@",
        /// jsonb `?`.
        HasKey => "?",
        /// jsonb `?&`.
        HasAllKeys => "?&",
        /// jsonb `?|`.
        HasAnyKey => "?|",
        /// Full-text `@@`.
        TextMatch => "@@",
        /// A boolean expression that is no comparison (`coalesce(a, b)`, `a + b > c`).
        Expression => "expr",
    }
}

/// A leaf's operator. Serialised, compared and sorted as its spelling.
#[derive(Debug, Clone)]
pub enum Operator {
    /// A MongoDB operator.
    Mongo(MongoOperator),
    /// A SQL comparison.
    Sql(SqlOperator),
    /// A spelling this version does not write: MongoDB's internal `$_internal...` operators
    /// passed through, or a newer version's operator read from a snapshot.
    Other(String),
}

impl Operator {
    /// The operator of a join condition's leaves.
    pub const JOIN: Operator = Operator::Sql(SqlOperator::Join);

    /// The spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Operator::Mongo(operator) => operator.as_str(),
            Operator::Sql(operator) => operator.as_str(),
            Operator::Other(text) => text,
        }
    }

    /// The operator spelled `text`.
    pub fn parse(text: &str) -> Self {
        if let Some(operator) = MongoOperator::parse(text) {
            return Operator::Mongo(operator);
        }
        match SqlOperator::parse(text) {
            Some(operator) => Operator::Sql(operator),
            None => Operator::Other(text.to_owned()),
        }
    }

    /// Whether this is the equality a join condition leaves on a table's column.
    pub fn is_join(&self) -> bool {
        self.as_str() == SqlOperator::Join.as_str()
    }
}

impl From<MongoOperator> for Operator {
    fn from(operator: MongoOperator) -> Self {
        Operator::Mongo(operator)
    }
}

impl From<SqlOperator> for Operator {
    fn from(operator: SqlOperator) -> Self {
        Operator::Sql(operator)
    }
}

spelled_traits!(Operator);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_distinct_and_read_back() {
        let mut seen = std::collections::BTreeSet::new();
        let known = MongoOperator::ALL
            .iter()
            .map(|op| Operator::from(*op))
            .chain(SqlOperator::ALL.iter().map(|op| Operator::from(*op)));
        for operator in known {
            assert!(seen.insert(operator.as_str().to_owned()), "{operator}");
            assert!(!matches!(
                Operator::parse(operator.as_str()),
                Operator::Other(_)
            ));
            assert_eq!(Operator::parse(operator.as_str()), operator);
        }
    }

    #[test]
    fn an_unknown_operator_is_kept_as_read() {
        let internal: Operator = serde_json::from_str(r#""$_internalExprEq""#).expect("parses");
        assert_eq!(internal, Operator::Other("$_internalExprEq".to_owned()));
        assert_eq!(
            serde_json::to_string(&internal).expect("serialises"),
            r#""$_internalExprEq""#
        );
        assert_eq!(Operator::Other("JOIN".to_owned()), Operator::JOIN);
        assert!(Operator::Other("JOIN".to_owned()).is_join());
    }

    #[test]
    fn operators_sort_as_their_spelling() {
        let mut operators: Vec<Operator> = ["$lt", "<", "JOIN", "$eq", "=", "$zz"]
            .into_iter()
            .map(Operator::parse)
            .collect();
        operators.sort();
        let spelled: Vec<&str> = operators.iter().map(Operator::as_str).collect();
        assert_eq!(spelled, ["$eq", "$lt", "$zz", "<", "=", "JOIN"]);
    }
}

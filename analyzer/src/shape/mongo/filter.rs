//! MongoDB filter → [`Predicate`], following the 8.0 query-shape rules.
//!
//! Literals become their [`ValueType`], the implicit `$eq` and `$and` are made explicit,
//! `$in` keeps only its element type, and the children of every `And`/`Or`/`Nor` are sorted,
//! so `{a: 1, b: 2}` and `{b: "x", a: 7}` are one shape. Dotted paths are kept as written.
//!
//! The only things kept besides names, operators and types are the `$exists` operand and the
//! `$type` names, as [`BoundConstant`]s, and only for leaves every matching document must
//! satisfy (the top-level conjunction): those are the ones a partial index can be built from.
//!
//! Anything MongoDB itself would refuse to parse (an unknown operator, `$in` without an
//! array, an empty `$or`, a `$type` that names no type, nesting past [`MAX_DEPTH`]) is
//! [`Malformed`]; the caller counts it, and no part of the filter is kept.

use bson::raw::{RawDocument, RawElement};
use bson::spec::ElementType;
use bson::RawBsonRef;

use super::{array_of, document_of, regex, types};
use crate::shape::{
    BoundConstant, Constant, Leaf, MongoOperator, OpClass, Operator, Predicate, Rejection, Target,
    ValueType,
};

/// The deepest nesting of documents a filter may have. MongoDB refuses deep filters too, and
/// the limit keeps hostile input from exhausting the stack.
pub(super) const MAX_DEPTH: usize = 100;

/// The filter could not be parsed. Deliberately carries nothing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed;

type Parsed<T = ()> = Result<T, Malformed>;

/// Builds one filter from one or several documents that are ANDed (`filter`, or the leading
/// `$match` stages of a pipeline).
#[derive(Debug, Default)]
pub(super) struct FilterBuilder {
    children: Vec<Predicate>,
    constants: Vec<BoundConstant>,
}

impl FilterBuilder {
    /// ANDs one filter document into the filter.
    pub(super) fn and(&mut self, document: &RawDocument) -> Parsed {
        let mut parser = Parser {
            constants: &mut self.constants,
        };
        parser.document(document, Scope::TOP, &mut self.children)
    }

    /// ANDs the filter in `element`: a document, or null / absent meaning "everything".
    pub(super) fn and_element(&mut self, element: &RawElement<'_>) -> Parsed {
        match element.element_type() {
            ElementType::Null | ElementType::Undefined => Ok(()),
            _ => self.and(document_of(element).ok_or(Malformed)?),
        }
    }

    /// Walks the fields of a command or of one of its statements: the one named `key` is the
    /// filter, ANDed in (a malformed one rejects the command); every other goes to `other`.
    pub(super) fn walk<'a>(
        fields: impl Iterator<Item = Result<RawElement<'a>, Rejection>>,
        key: &str,
        mut other: impl FnMut(&RawElement<'a>),
    ) -> Result<Self, Rejection> {
        let mut filter = Self::default();
        for field in fields {
            let field = field?;
            if field.key().as_str() == key {
                filter
                    .and_element(&field)
                    .map_err(|_| Rejection::MalformedFilter)?;
            } else {
                other(&field);
            }
        }
        Ok(filter)
    }

    /// The filter (always an `And` at the top) and its sorted constants.
    pub(super) fn finish(mut self) -> (Predicate, Vec<BoundConstant>) {
        self.children.sort_unstable();
        self.constants.sort_unstable();
        (Predicate::And(self.children), self.constants)
    }
}

/// Where in the filter a predicate sits.
#[derive(Debug, Clone, Copy)]
struct Scope {
    /// Whether every matching document satisfies it (top level, or under `$and` only).
    conjunctive: bool,
    /// How many documents deep it is.
    depth: usize,
}

impl Scope {
    const TOP: Scope = Scope {
        conjunctive: true,
        depth: 0,
    };

    /// One document deeper, still in the same conjunction (`$and`).
    fn deeper(self) -> Parsed<Scope> {
        if self.depth >= MAX_DEPTH {
            return Err(Malformed);
        }
        Ok(Scope {
            conjunctive: self.conjunctive,
            depth: self.depth + 1,
        })
    }

    /// One document deeper, under `$or`, `$nor`, `$not` or `$elemMatch`.
    fn nested(self) -> Parsed<Scope> {
        Ok(Scope {
            conjunctive: false,
            ..self.deeper()?
        })
    }
}

struct Parser<'c> {
    constants: &'c mut Vec<BoundConstant>,
}

impl Parser<'_> {
    /// A filter document: its predicates are pushed onto `out` (the implicit `$and`).
    fn document(
        &mut self,
        document: &RawDocument,
        scope: Scope,
        out: &mut Vec<Predicate>,
    ) -> Parsed {
        for element in document.iter_elements() {
            let element = element.map_err(|_| Malformed)?;
            let key = element.key().as_str();
            if key.starts_with('$') {
                self.top_level_operator(key, &element, scope, out)?;
            } else {
                self.field(key, &element, scope, out)?;
            }
        }
        Ok(())
    }

    fn top_level_operator(
        &mut self,
        operator: &str,
        element: &RawElement<'_>,
        scope: Scope,
        out: &mut Vec<Predicate>,
    ) -> Parsed {
        match operator {
            "$and" => {
                let scope = scope.deeper()?;
                for branch in branches(element)? {
                    self.document(branch?, scope, out)?;
                }
            }
            "$or" => out.push(Predicate::Or(self.alternatives(element, scope)?)),
            "$nor" => out.push(Predicate::Nor(self.alternatives(element, scope)?)),
            "$text" => {
                document_of(element).ok_or(Malformed)?;
                out.push(leaf(
                    "$text",
                    MongoOperator::Text,
                    OpClass::Text,
                    ValueType::String,
                ));
            }
            "$comment" => {}
            "$expr" | "$where" | "$jsonSchema" | "$sampleRate" | "$alwaysTrue" | "$alwaysFalse" => {
                out.push(not_indexable(operator, operator, element))
            }
            _ => return Err(Malformed),
        }
        Ok(())
    }

    /// The branches of `$or` / `$nor`, each collapsed to one predicate, sorted.
    fn alternatives(&mut self, element: &RawElement<'_>, scope: Scope) -> Parsed<Vec<Predicate>> {
        let scope = scope.nested()?;
        let mut alternatives = Vec::new();
        for branch in branches(element)? {
            let mut children = Vec::new();
            self.document(branch?, scope, &mut children)?;
            alternatives.push(collapse(children));
        }
        alternatives.sort_unstable();
        Ok(alternatives)
    }

    /// `{path: value}`: an implicit `$eq`, a regex match, or a document of operators.
    fn field(
        &mut self,
        path: &str,
        element: &RawElement<'_>,
        scope: Scope,
        out: &mut Vec<Predicate>,
    ) -> Parsed {
        match element.element_type() {
            ElementType::EmbeddedDocument => {
                let document = document_of(element).ok_or(Malformed)?;
                // A DBRef (`{$ref, $id}`) is a value, not operators.
                if first_key(document)?.is_some_and(|key| key.starts_with('$') && key != "$ref") {
                    self.operators(path, document, scope.deeper()?, out)
                } else {
                    out.push(leaf(
                        path,
                        MongoOperator::Eq,
                        OpClass::Eq,
                        ValueType::Object,
                    ));
                    Ok(())
                }
            }
            ElementType::RegularExpression => {
                let (pattern, flags) = regex_of(element)?;
                out.push(regex_leaf(path, pattern, &[flags]));
                Ok(())
            }
            element_type => {
                out.push(equality(path, types::value_type(element_type)));
                Ok(())
            }
        }
    }

    /// `{path: {$op: operand, ...}}`: one predicate per operator, pushed onto `out`.
    fn operators(
        &mut self,
        path: &str,
        document: &RawDocument,
        scope: Scope,
        out: &mut Vec<Predicate>,
    ) -> Parsed {
        // `$regex` and `$options` are one predicate, in either order.
        let mut regex = None;
        let mut options = None;
        for element in document.iter_elements() {
            let element = element.map_err(|_| Malformed)?;
            let operator = element.key().as_str();
            let operand_type = types::value_type(element.element_type());
            let predicate = match operator {
                "$eq" => equality(path, operand_type),
                "$ne" => leaf(path, MongoOperator::Ne, OpClass::Ne, operand_type),
                "$gt" => leaf(path, MongoOperator::Gt, OpClass::Range, operand_type),
                "$gte" => leaf(path, MongoOperator::Gte, OpClass::Range, operand_type),
                "$lt" => leaf(path, MongoOperator::Lt, OpClass::Range, operand_type),
                "$lte" => leaf(path, MongoOperator::Lte, OpClass::Range, operand_type),
                "$in" => leaf(path, MongoOperator::In, OpClass::In, list_type(&element)?),
                "$nin" => leaf(path, MongoOperator::Nin, OpClass::Ne, list_type(&element)?),
                "$all" => leaf(path, MongoOperator::All, OpClass::Eq, list_type(&element)?),
                "$exists" => {
                    let exists = types::truth(&element).ok_or(Malformed)?;
                    self.bind(scope, path, MongoOperator::Exists, || {
                        Constant::Exists(exists)
                    });
                    leaf(
                        path,
                        MongoOperator::Exists,
                        OpClass::Exists,
                        ValueType::None,
                    )
                }
                "$type" => {
                    let names = types::type_names(&element).ok_or(Malformed)?;
                    self.bind(scope, path, MongoOperator::Type, || Constant::Type(names));
                    leaf(path, MongoOperator::Type, OpClass::Type, ValueType::None)
                }
                "$regex" => {
                    regex = Some(match element.value().map_err(|_| Malformed)? {
                        RawBsonRef::String(pattern) => (pattern, ""),
                        RawBsonRef::RegularExpression(regex) => {
                            (regex.pattern.as_str(), regex.options.as_str())
                        }
                        _ => return Err(Malformed),
                    });
                    continue;
                }
                "$options" => {
                    options = Some(str_operand(&element)?);
                    continue;
                }
                "$elemMatch" => self.elem_match(path, &element, scope)?,
                "$not" => self.not(path, &element, scope)?,
                "$size" | "$mod" | "$bitsAllSet" | "$bitsAllClear" | "$bitsAnySet"
                | "$bitsAnyClear" | "$geoWithin" | "$geoIntersects" | "$near" | "$nearSphere"
                | "$within" => not_indexable(path, operator, &element),
                operator if operator.starts_with("$_internal") => {
                    not_indexable(path, operator, &element)
                }
                // Modifiers of `$near`, and a comment: nothing of their own to index.
                "$maxDistance" | "$minDistance" | "$comment" => continue,
                _ => return Err(Malformed),
            };
            out.push(predicate);
        }
        match (regex, options) {
            (Some((pattern, flags)), options) => {
                out.push(regex_leaf(path, pattern, &[flags, options.unwrap_or("")]));
                Ok(())
            }
            (None, Some(_)) => Err(Malformed),
            (None, None) => Ok(()),
        }
    }

    /// `{path: {$elemMatch: {...}}}`. An operator-only operand (`{$gt: 1}`) tests the element
    /// itself, which the inner leaves name with the empty path.
    fn elem_match(
        &mut self,
        path: &str,
        element: &RawElement<'_>,
        scope: Scope,
    ) -> Parsed<Predicate> {
        let document = document_of(element).ok_or(Malformed)?;
        let scope = scope.nested()?;
        let mut children = Vec::new();
        match first_key(document)? {
            Some(key) if key.starts_with('$') && !is_top_level_operator(key) => {
                self.operators("", document, scope, &mut children)?;
            }
            _ => self.document(document, scope, &mut children)?,
        }
        Ok(Predicate::ElemMatch {
            path: path.to_owned(),
            predicate: Box::new(collapse(children)),
        })
    }

    /// `{path: {$not: /re/}}` or `{path: {$not: {$op: ...}}}`.
    fn not(&mut self, path: &str, element: &RawElement<'_>, scope: Scope) -> Parsed<Predicate> {
        let inner = match element.element_type() {
            ElementType::RegularExpression => {
                let (pattern, flags) = regex_of(element)?;
                regex_leaf(path, pattern, &[flags])
            }
            ElementType::EmbeddedDocument => {
                let document = document_of(element).ok_or(Malformed)?;
                if first_key(document)?.is_none() {
                    return Err(Malformed);
                }
                let mut children = Vec::new();
                self.operators(path, document, scope.nested()?, &mut children)?;
                collapse(children)
            }
            _ => return Err(Malformed),
        };
        Ok(Predicate::Not(Box::new(inner)))
    }

    /// Records a constant for a leaf, when every matching document satisfies the leaf.
    fn bind(
        &mut self,
        scope: Scope,
        path: &str,
        operator: MongoOperator,
        constant: impl FnOnce() -> Constant,
    ) {
        if scope.conjunctive {
            self.constants.push(BoundConstant {
                target: Target::Field(path.to_owned()),
                operator: operator.into(),
                constant: constant(),
            });
        }
    }
}

/// Operators that start a filter document rather than test a value; `$elemMatch` with one of
/// these first is a document filter on the elements' fields.
fn is_top_level_operator(key: &str) -> bool {
    matches!(
        key,
        "$and" | "$or" | "$nor" | "$where" | "$expr" | "$text" | "$comment" | "$jsonSchema"
    )
}

/// The documents of a non-empty array operand (`$and`, `$or`, `$nor`).
fn branches<'a>(element: &RawElement<'a>) -> Parsed<impl Iterator<Item = Parsed<&'a RawDocument>>> {
    let array = array_of(element).ok_or(Malformed)?;
    let mut branches = array
        .iter_elements()
        .map(|branch| document_of(&branch.map_err(|_| Malformed)?).ok_or(Malformed))
        .peekable();
    if branches.peek().is_none() {
        return Err(Malformed);
    }
    Ok(branches)
}

/// Several predicates as one: a single one stays itself, others become a sorted `And`.
fn collapse(mut children: Vec<Predicate>) -> Predicate {
    if children.len() == 1 {
        if let Some(only) = children.pop() {
            return only;
        }
    }
    children.sort_unstable();
    Predicate::And(children)
}

fn first_key(document: &RawDocument) -> Parsed<Option<&str>> {
    match document.iter_elements().next() {
        None => Ok(None),
        Some(Ok(element)) => Ok(Some(element.key().as_str())),
        Some(Err(_)) => Err(Malformed),
    }
}

pub(super) fn leaf(
    path: &str,
    operator: impl Into<Operator>,
    class: OpClass,
    value_type: ValueType,
) -> Predicate {
    Predicate::Leaf(Leaf {
        target: Target::Field(path.to_owned()),
        operator: operator.into(),
        class,
        value_type,
    })
}

/// `$eq`, explicit or implicit. Equality with null matches missing fields too: `IsNull`.
fn equality(path: &str, value_type: ValueType) -> Predicate {
    let class = match value_type {
        ValueType::Null => OpClass::IsNull,
        _ => OpClass::Eq,
    };
    leaf(path, MongoOperator::Eq, class, value_type)
}

fn not_indexable(path: &str, operator: &str, operand: &RawElement<'_>) -> Predicate {
    let value_type = types::value_type(operand.element_type());
    leaf(
        path,
        Operator::parse(operator),
        OpClass::NotIndexable,
        value_type,
    )
}

/// A regex match; `flags` are the regex's own options and any sibling `$options`.
fn regex_leaf(path: &str, pattern: &str, flags: &[&str]) -> Predicate {
    leaf(
        path,
        MongoOperator::Regex,
        regex::class(pattern, flags),
        ValueType::Regex,
    )
}

fn regex_of<'a>(element: &RawElement<'a>) -> Parsed<(&'a str, &'a str)> {
    match element.value().map_err(|_| Malformed)? {
        RawBsonRef::RegularExpression(regex) => {
            Ok((regex.pattern.as_str(), regex.options.as_str()))
        }
        _ => Err(Malformed),
    }
}

fn str_operand<'a>(element: &RawElement<'a>) -> Parsed<&'a str> {
    match element.value().map_err(|_| Malformed)? {
        RawBsonRef::String(text) => Ok(text),
        _ => Err(Malformed),
    }
}

fn list_type(element: &RawElement<'_>) -> Parsed<ValueType> {
    types::list_type(array_of(element).ok_or(Malformed)?).ok_or(Malformed)
}

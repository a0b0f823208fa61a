//! What a value costs on the heap, so the aggregate and the SQL cache can hold to a budget
//! in bytes rather than in a count of shapes whose sizes differ by ten times.
//!
//! Every allocation is charged as the allocator serves it, not as requested: glibc's malloc
//! adds an 8-byte header, rounds up to 16 bytes and never hands out less than 32, so a
//! 5-byte field name costs 32 bytes. Vectors are charged their capacity. The figures are
//! checked against a counting allocator (`analyzer/tests/footprint.rs`).
//!
//! ## Layout
//! - [`HeapSize`]: the trait, for the standard containers and every shape type.
//! - [`allocation`]: one allocation's real cost.

use super::{
    BoundConstant, Command, Constant, Leaf, Lowering, Namespace, Operator, Predicate, Shape,
    ShapeOccurrence, SortKey, Target, Write,
};

/// What malloc takes for a request of `bytes`: header, rounding and its minimum chunk.
pub fn allocation(bytes: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    (bytes.saturating_add(8 + 15) & !15).max(32)
}

/// Bytes a value owns on the heap, beyond its own inline size.
pub trait HeapSize {
    /// The heap bytes, allocator overhead included.
    fn heap_size(&self) -> usize;
}

impl HeapSize for String {
    fn heap_size(&self) -> usize {
        allocation(self.capacity())
    }
}

impl<T: HeapSize> HeapSize for Vec<T> {
    fn heap_size(&self) -> usize {
        allocation(self.capacity() * std::mem::size_of::<T>())
            + self.iter().map(HeapSize::heap_size).sum::<usize>()
    }
}

impl<T: HeapSize> HeapSize for Option<T> {
    fn heap_size(&self) -> usize {
        self.as_ref().map_or(0, HeapSize::heap_size)
    }
}

impl<T: HeapSize> HeapSize for Box<T> {
    fn heap_size(&self) -> usize {
        allocation(std::mem::size_of::<T>()) + T::heap_size(self)
    }
}

impl HeapSize for i64 {
    fn heap_size(&self) -> usize {
        0
    }
}

/// Known spellings are static; only a spelling read from a newer version owns its text.
impl HeapSize for Operator {
    fn heap_size(&self) -> usize {
        match self {
            Operator::Other(text) => text.heap_size(),
            Operator::Mongo(_) | Operator::Sql(_) => 0,
        }
    }
}

impl HeapSize for Command {
    fn heap_size(&self) -> usize {
        match self {
            Command::Other(text) => text.heap_size(),
            _ => 0,
        }
    }
}

impl HeapSize for Namespace {
    fn heap_size(&self) -> usize {
        self.database.heap_size() + self.schema.heap_size() + self.collection.heap_size()
    }
}

impl HeapSize for Target {
    fn heap_size(&self) -> usize {
        match self {
            Target::Field(name) => name.heap_size(),
            Target::Expression { text, column } => text.heap_size() + column.heap_size(),
        }
    }
}

impl HeapSize for Leaf {
    fn heap_size(&self) -> usize {
        self.target.heap_size() + self.operator.heap_size()
    }
}

impl HeapSize for Predicate {
    fn heap_size(&self) -> usize {
        match self {
            Predicate::And(children) | Predicate::Or(children) | Predicate::Nor(children) => {
                children.heap_size()
            }
            Predicate::Not(inner) => inner.heap_size(),
            Predicate::ElemMatch { path, predicate } => path.heap_size() + predicate.heap_size(),
            Predicate::Leaf(leaf) => leaf.heap_size(),
        }
    }
}

impl HeapSize for SortKey {
    fn heap_size(&self) -> usize {
        self.target.heap_size()
    }
}

impl HeapSize for Shape {
    fn heap_size(&self) -> usize {
        self.namespace.heap_size()
            + self.command.heap_size()
            + self.filter.heap_size()
            + self.sort.heap_size()
            + self.projection.heap_size()
            + self.group_by.heap_size()
            + self.options.heap_size()
    }
}

impl HeapSize for Constant {
    fn heap_size(&self) -> usize {
        match self {
            Constant::Type(name) => name.heap_size(),
            Constant::Tokens(tokens) => tokens.heap_size(),
            Constant::Exists(_) | Constant::Bool(_) | Constant::Digest(_) => 0,
        }
    }
}

impl HeapSize for BoundConstant {
    fn heap_size(&self) -> usize {
        self.target.heap_size() + self.operator.heap_size() + self.constant.heap_size()
    }
}

impl HeapSize for ShapeOccurrence {
    fn heap_size(&self) -> usize {
        self.shape.heap_size() + self.constants.heap_size() + self.normalized_sql.heap_size()
    }
}

impl HeapSize for Write {
    fn heap_size(&self) -> usize {
        self.namespace.heap_size()
    }
}

impl HeapSize for Lowering {
    fn heap_size(&self) -> usize {
        self.shapes.heap_size() + self.writes.heap_size() + self.closes_cursors.heap_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_charged_as_malloc_serves_them() {
        assert_eq!(allocation(0), 0);
        assert_eq!(allocation(1), 32);
        assert_eq!(allocation(24), 32);
        assert_eq!(allocation(25), 48);
        assert_eq!(allocation(100), 112);
    }

    #[test]
    fn a_shape_is_charged_for_every_string_and_vector() {
        let mut shape = Shape::new(Namespace::mongo("app", "orders"), "find");
        let empty = shape.heap_size();
        // Two strings of a few bytes (the command is a static spelling): a minimum chunk each.
        assert_eq!(empty, 2 * 32);
        shape.filter = Predicate::And(vec![Predicate::Leaf(Leaf {
            target: Target::Field("status".into()),
            operator: "$eq".into(),
            class: super::super::OpClass::Eq,
            value_type: super::super::ValueType::String,
        })]);
        // The vector's slot and the field name; the operator is a static spelling.
        let one_leaf = allocation(std::mem::size_of::<Predicate>()) + 32;
        assert_eq!(shape.heap_size(), empty + one_leaf);
    }
}

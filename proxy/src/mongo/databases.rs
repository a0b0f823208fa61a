//! The database names of one connection's commands, shared: a connection's requests name one
//! database, mostly, and every command carries its name to the analysis thread. Sharing the
//! last name makes that a reference count instead of an allocation (and a free on the
//! analysis thread) per command.
//!
//! ## Layout
//! - [`Databases`]: the last name, handed out again while requests repeat it.

use std::sync::Arc;

/// The last database name a connection's requests gave.
#[derive(Debug, Clone)]
pub struct Databases(Arc<str>);

impl Default for Databases {
    fn default() -> Self {
        Self(Arc::from(""))
    }
}

impl Databases {
    /// `name`, shared with the commands before it that gave the same.
    pub fn name(&mut self, name: &str) -> Arc<str> {
        if *self.0 != *name {
            self.0 = Arc::from(name);
        }
        Arc::clone(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_name_is_shared_and_a_new_one_replaces_it() {
        let mut databases = Databases::default();
        let first = databases.name("app");
        let again = databases.name("app");
        assert!(Arc::ptr_eq(&first, &again));
        let other = databases.name("billing");
        assert_eq!(&*other, "billing");
        assert_eq!(&*first, "app");
        assert!(!Arc::ptr_eq(&databases.name("app"), &first));
    }
}

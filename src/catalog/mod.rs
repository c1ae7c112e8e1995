//! The component catalog: which services Plugboard knows, how each one is
//! authorised, and how a credential is proven to work.
//!
//! Components are data, not code: one file per component under
//! `components/` ships inside the binary, and an operator's file or folder
//! (`PLUGBOARD_CATALOG`) adds entries or overrides fields of built-in ones
//! without recompiling.

mod load;
mod model;
pub mod template;

use std::collections::HashMap;
use std::path::Path;

pub use load::{CatalogError, IconSource};
pub use model::{
    AuthKind, AuthMethod, ClientAuth, Component, Field, JsonExpectation, OAuth2Flow, Pattern, TestRequest,
};
pub use template::{scopes as fill_scopes, url as fill_url};

/// Every known component, sorted by display name.
#[derive(Debug)]
pub struct Catalog {
    components: Vec<Component>,
    by_key: HashMap<String, usize>,
}

impl Catalog {
    /// The built-in catalog with the operator's file, if any, merged over
    /// it. `icons` finds the built-in entries' icon files (embedded in the
    /// binary by the web layer, which serves them).
    pub fn load(operator_file: Option<&Path>, icons: &dyn IconSource) -> Result<Catalog, CatalogError> {
        load::load(operator_file, icons)
    }

    fn new(mut components: Vec<Component>) -> Catalog {
        components.sort_by_key(|c| c.name.to_lowercase());
        let by_key = components.iter().enumerate().map(|(i, c)| (c.key.clone(), i)).collect();
        Catalog { components, by_key }
    }

    pub fn get(&self, key: &str) -> Option<&Component> {
        self.by_key.get(key).map(|&i| &self.components[i])
    }

    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// Components whose name, key, category or an alias contains `query`,
    /// ignoring case.
    pub fn search<'a>(&'a self, query: &'a str) -> impl Iterator<Item = &'a Component> + 'a {
        let needle = query.trim().to_lowercase();
        self.components.iter().filter(move |c| needle.is_empty() || c.matches(&needle))
    }
}

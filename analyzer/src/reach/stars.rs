//! Star imports, followed by name: `from m import *` binds exactly `m`'s
//! `__all__` (when it is a literal list) or its public top-level names, so
//! a name is followed into the sources that can bind it, and a source
//! counts whole only when what it binds cannot be known.

use crate::parse::ParsedFile;
use crate::report::ModuleKind;
use crate::symbols::{Bound, StmtKind};

use super::Walker;

impl Walker<'_, '_> {
    /// Follows `name` into the star imports of `module` that may bind it
    /// (a star import binds exactly its source's `__all__`, or its public
    /// top-level names); a source counts whole only when that is unknown.
    /// Returns whether some star import may bind it.
    pub(super) fn star_sources(
        &mut self,
        module: &str,
        parsed: &ParsedFile,
        name: &str,
        referrer: &str,
    ) -> bool {
        let stars: Vec<(String, u32)> = parsed
            .statements
            .iter()
            .flat_map(|s| s.imports.iter())
            .filter_map(|(_, b)| match b {
                Bound::Star { module, level } => Some((module.clone(), *level)),
                _ => None,
            })
            .collect();
        let mut may_bind = false;
        for (star, level) in stars {
            let Some(source) = self.absolute(module, &star, level) else {
                may_bind = true;
                self.fallback(
                    module,
                    format!("an unresolvable star import may bind {name}"),
                );
                continue;
            };
            match self.star_binds(&source, name) {
                Some(false) => {}
                Some(true) => {
                    may_bind = true;
                    // Not chained: a module-valued binding there counts whole.
                    self.name(&source, name, referrer, false);
                }
                None => {
                    may_bind = true;
                    self.fallback(
                        &source,
                        format!("{name} may come from `from {source} import *`"),
                    );
                }
            }
        }
        may_bind
    }

    /// Whether `from source import *` can bind `name`: `Some(false)` when
    /// it cannot (not in a literal `__all__`, or private, or bound nowhere in
    /// a source without `__all__` or star imports of its own), `None` when
    /// that cannot be known (a project module that did not parse).
    /// Non-project sources count as binding it (their identity covers it).
    fn star_binds(&self, source: &str, name: &str) -> Option<bool> {
        let view = self.view(source)?;
        if view.kind != ModuleKind::Local {
            return Some(true);
        }
        let parsed = view.parsed?;
        // `globals()[...] = ...` and the like can bind anything.
        if parsed.facts.all_dynamic || parsed.statements.iter().any(|s| s.binds_dynamically) {
            return None;
        }
        if let Some(all) = &parsed.facts.all {
            return Some(all.iter().any(|n| n == name));
        }
        if name.starts_with('_') {
            return Some(false);
        }
        let binds = parsed.statements.iter().any(|s| {
            s.kind != StmtKind::Inert && s.binds.iter().any(|b| b == name)
                || s.imports
                    .iter()
                    .any(|(b, t)| b == name || matches!(t, Bound::Star { .. }))
        });
        Some(binds || self.modules.contains_key(&format!("{source}.{name}")))
    }
}

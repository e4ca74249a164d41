//! Which definitions act when their module is imported (the syntactic
//! facts are in `crate::effects`): decided here, where imports resolve to
//! project, third-party or stdlib modules.

use crate::parse::ParsedFile;
use crate::report::ModuleKind;
use crate::symbols::{Bound, StmtKind, TopStatement};

use super::Walker;

/// Bases are followed this deep through project classes.
const MAX_BASE_DEPTH: usize = 16;

/// What a name evaluated in a class header or decorator refers to.
pub(super) enum Target<'p> {
    /// A builtin, the standard library, or casher itself: acts on nothing
    /// another function could find (`@cached` registers nothing).
    Inert,
    /// Third-party, unresolved or unknown: may act on anything.
    Foreign,
    /// A project class statement (module, statement).
    Class(String, &'p TopStatement),
    /// Project function statements (module, the `def`s binding the name:
    /// several with `@overload` stubs or redefinitions).
    Function(String, Vec<&'p TopStatement>),
    /// Another project object (a function, `Base = declarative_base()`).
    Project,
}

impl<'a> Walker<'_, 'a> {
    /// Why a definition or assignment acts at import, if it does: it runs
    /// project or third-party code there and can register itself where a
    /// function finds it without naming it.
    pub(super) fn acts_on_import<'s>(
        &'s self,
        module: &str,
        parsed: &'s ParsedFile,
        stmt: &'s TopStatement,
    ) -> Option<&'static str> {
        let e = &stmt.effects;
        // A keyword with no root name (`metaclass=make()`) is unknown.
        let foreign = |name: &Option<String>| {
            name.as_ref().is_none_or(|n| {
                !matches!(
                    self.target(module, parsed, std::slice::from_ref(n)),
                    Target::Inert
                )
            })
        };
        match stmt.kind {
            StmtKind::Definition => {
                if let Some(why) = e
                    .decorators
                    .iter()
                    .find_map(|d| self.decoration_acts(module, parsed, d))
                {
                    Some(why)
                } else if e.init_subclass {
                    Some("defines __init_subclass__")
                } else if e.keywords.iter().any(foreign) {
                    Some("its metaclass or class keywords act when the module is imported")
                } else if e
                    .bases
                    .iter()
                    .any(|b| self.base_acts(module, parsed, b.as_deref(), 0))
                {
                    Some("a base class acts on its subclasses")
                } else {
                    None
                }
            }
            StmtKind::Assignment => e
                .mutates
                .iter()
                .any(|name| {
                    matches!(
                        self.target(module, parsed, std::slice::from_ref(name)),
                        Target::Project | Target::Class(..) | Target::Function(..)
                    ) && parsed
                        .statements
                        .iter()
                        .any(|s| !std::ptr::eq(s, stmt) && s.binds.iter().any(|b| b == name))
                })
                .then_some("fills a registry when the module is imported"),
            _ => None,
        }
    }

    /// Whether subclassing `base` may act: it is not builtin or stdlib, and
    /// it is foreign, not a class statement, or a project class that
    /// defines `__init_subclass__` or has a metaclass (transitively), or
    /// subclasses are looked up by `__subclasses__()`.
    fn base_acts(
        &self,
        module: &str,
        parsed: &ParsedFile,
        base: Option<&[String]>,
        depth: usize,
    ) -> bool {
        let Some(chain) = base else { return true };
        if depth > MAX_BASE_DEPTH {
            return true;
        }
        match self.target(module, parsed, chain) {
            Target::Inert => false,
            Target::Foreign | Target::Project | Target::Function(..) => true,
            Target::Class(owner, class) => {
                if self.subclass_discovery || class.effects.init_subclass {
                    return true;
                }
                let Some(owner_parsed) = self.view(&owner).and_then(|v| v.parsed) else {
                    return true;
                };
                class.effects.keywords.iter().any(|k| {
                    k.as_ref().is_none_or(|k| {
                        !matches!(
                            self.target(&owner, owner_parsed, std::slice::from_ref(k)),
                            Target::Inert
                        )
                    })
                }) || class
                    .effects
                    .bases
                    .iter()
                    .any(|b| self.base_acts(&owner, owner_parsed, b.as_deref(), depth + 1))
            }
        }
    }

    /// What the dotted `chain` (`["mod", "Base"]`) names in `module`.
    pub(super) fn target<'s>(
        &'s self,
        module: &str,
        parsed: &'s ParsedFile,
        chain: &[String],
    ) -> Target<'s>
    where
        'a: 's,
    {
        let Some(first) = chain.first() else {
            return Target::Foreign;
        };
        if let Some(bound) = Self::binding_of(parsed, first) {
            let (target, name) = match bound {
                Bound::Module { module: m, level } => match self.absolute(module, m, *level) {
                    // `import a.b` binds `a`: the chain walks from it.
                    Some(abs) => (abs, None),
                    None => return Target::Foreign,
                },
                Bound::From {
                    module: m,
                    level,
                    name,
                } => match self.absolute(module, m, *level) {
                    Some(abs) => {
                        let sub = if abs.is_empty() {
                            name.clone()
                        } else {
                            format!("{abs}.{name}")
                        };
                        if self.modules.contains_key(&sub) {
                            (sub, None)
                        } else {
                            (abs, Some(name.clone()))
                        }
                    }
                    None => return Target::Foreign,
                },
                Bound::Star { .. } => return Target::Foreign,
            };
            if target == "casher" || target.starts_with("casher.") {
                return Target::Inert;
            }
            // Walk the rest of the chain down submodules.
            let mut current = target;
            let mut rest: Vec<String> =
                name.into_iter().chain(chain[1..].iter().cloned()).collect();
            while let Some(next) = rest.first() {
                let sub = format!("{current}.{next}");
                if !self.modules.contains_key(&sub) {
                    break;
                }
                current = sub;
                rest.remove(0);
            }
            return match self.view(&current) {
                None => Target::Foreign,
                Some(v) if matches!(v.kind, ModuleKind::Stdlib | ModuleKind::Builtin) => {
                    Target::Inert
                }
                Some(v) if v.kind != ModuleKind::Local => Target::Foreign,
                Some(v) => match (rest.first(), v.parsed) {
                    (Some(name), Some(p)) if rest.len() == 1 => Self::local(&current, p, name),
                    _ => Target::Project,
                },
            };
        }
        match Self::local(module, parsed, first) {
            Target::Foreign if self.builtins.contains(first.as_str()) => Target::Inert,
            Target::Class(m, c) if chain.len() == 1 => Target::Class(m, c),
            Target::Function(m, f) if chain.len() == 1 => Target::Function(m, f),
            // an attribute of a class or function
            Target::Class(..) | Target::Function(..) => Target::Project,
            other => other,
        }
    }

    /// `name` as bound by the statements of project module `module`.
    fn local<'p>(module: &str, parsed: &'p ParsedFile, name: &str) -> Target<'p> {
        use crate::identity::DefinitionKind;
        let binders: Vec<&TopStatement> = parsed
            .statements
            .iter()
            .filter(|s| s.kind != StmtKind::Inert && s.binds.iter().any(|b| b == name))
            .collect();
        match binders.as_slice() {
            [] => Target::Foreign,
            [s] if s.id_kind == DefinitionKind::Class => Target::Class(module.to_owned(), s),
            // Only `def`s (an `@overload` stub, a redefinition): whichever
            // the name holds when it is used, it is one of them.
            all if all.iter().all(|s| {
                s.kind == StmtKind::Definition && s.id_kind == DefinitionKind::Function
            }) =>
            {
                Target::Function(module.to_owned(), binders)
            }
            _ => Target::Project,
        }
    }

    /// `__subclasses__()` is used by reached code: classes with project
    /// bases now count as effects; modules already reached are scanned
    /// again.
    pub(super) fn discover_subclasses(&mut self) {
        self.subclass_discovery = true;
        let done: Vec<String> = self.effects_done.iter().cloned().collect();
        for module in done {
            if let Some(parsed) = self
                .view(&module)
                .filter(|v| v.kind == ModuleKind::Local)
                .and_then(|v| v.parsed)
            {
                self.enqueue_effects(&module, parsed);
            }
        }
    }
}

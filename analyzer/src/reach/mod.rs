//! Function-level code identity: the definitions a function can reach.
//!
//! Starting from the function's own top-level statement, every name it
//! uses is resolved with module scoping: to the statements binding it in the
//! same module, through `import m` + `m.attr` and `from m import f` into other
//! project modules, and into third-party or stdlib modules as their identity.
//! Every reached module also contributes its effects (statements that run on
//! import and are not plain definitions). Where static analysis cannot see
//! (star imports of unknown names, module `__getattr__`, `globals()`/`eval`,
//! computed `getattr`, a module used as a value, an unresolvable name), the
//! whole module counts instead, and the reason is reported.
//!
//! The digest is a hash over the *set* of reached statements keyed by module
//! and name, so moving or adding unrelated code changes nothing, and
//! recursion (even across modules) needs no special order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::identity::DefinitionId;
use crate::parse::ParsedFile;
use crate::report::ModuleKind;
use crate::resolve::resolve_relative;
use crate::symbols::{Bound, StmtKind, TopStatement};

mod decorators;
mod effects;
mod stars;

/// What the reachability needs to know of one module of the import graph.
pub struct ModuleView<'a> {
    pub kind: ModuleKind,
    pub path: Option<PathBuf>,
    pub hash: Option<String>,
    pub distribution: Option<String>,
    pub parsed: Option<&'a ParsedFile>,
    pub is_package: bool,
}

/// One reached top-level statement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Definition {
    /// What a code input names: structural, never positional.
    pub id: DefinitionId,
    /// `module.name` for humans (see [`DefinitionId::display_name`]).
    pub name: String,
    pub path: Option<PathBuf>,
    /// Where it is now: for messages and the reach check, never identity.
    pub line: u32,
    pub end_line: u32,
    pub hash: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fallback {
    pub module: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reach {
    pub definitions: Vec<Definition>,
    pub fallbacks: Vec<Fallback>,
    /// Project modules whose files the identity depends on.
    pub files: Vec<PathBuf>,
    pub digest: String,
}

struct Walker<'m, 'a> {
    modules: &'m HashMap<String, ModuleView<'a>>,
    builtins: &'m std::collections::HashSet<String>,
    /// (module, statement index) -> reason
    reached: BTreeMap<(String, usize), String>,
    effects_done: BTreeSet<String>,
    names_done: BTreeSet<(String, String, bool)>,
    whole: BTreeMap<String, String>,
    external: BTreeSet<String>,
    work: Vec<(String, usize, String)>,
    /// Reached code looks classes up through `__subclasses__()`: every
    /// class with a project base then counts as an effect of its module.
    subclass_discovery: bool,
}

fn hex(bytes: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*bytes).to_hex().to_string()
}

impl<'m, 'a> Walker<'m, 'a> {
    fn view(&self, module: &str) -> Option<&'m ModuleView<'a>> {
        self.modules.get(module)
    }

    fn package_of(&self, module: &str) -> String {
        match self.view(module) {
            Some(v) if v.is_package => module.to_owned(),
            _ => module
                .rsplit_once('.')
                .map(|(p, _)| p.to_owned())
                .unwrap_or_default(),
        }
    }

    fn absolute(&self, importer: &str, module: &str, level: u32) -> Option<String> {
        resolve_relative(module, level, &self.package_of(importer))
    }

    fn fallback(&mut self, module: &str, reason: String) {
        self.whole.entry(module.to_owned()).or_insert(reason);
        self.module_reached(module);
    }

    /// A module is imported: its ancestors run, and its effects count.
    fn module_reached(&mut self, module: &str) {
        let mut prefix = String::new();
        for part in module.split('.') {
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(part);
            self.one_module(&prefix.clone());
        }
    }

    fn one_module(&mut self, module: &str) {
        if !self.effects_done.insert(module.to_owned()) {
            return;
        }
        let Some(view) = self.view(module) else {
            self.external.insert(format!("{module}=unresolved"));
            return;
        };
        match (view.kind, view.parsed) {
            (ModuleKind::Local, Some(parsed)) => {
                self.enqueue_effects(module, parsed);
                if parsed
                    .statements
                    .iter()
                    .any(|s| s.binds.iter().any(|b| b == "__getattr__"))
                {
                    self.whole
                        .entry(module.to_owned())
                        .or_insert_with(|| "defines a module __getattr__".to_owned());
                }
            }
            (ModuleKind::Local, None) => {
                self.whole
                    .entry(module.to_owned())
                    .or_insert_with(|| "not parsed".to_owned());
            }
            _ => {
                let identity = view
                    .distribution
                    .clone()
                    .or_else(|| view.hash.clone())
                    .unwrap_or_else(|| view.kind.as_str().to_owned());
                self.external.insert(format!("{module}={identity}"));
            }
        }
    }

    /// Effects and imports run whenever the module is imported: they
    /// always count, and the modules they import run too; so do the
    /// definitions that act at import (see `effects.rs`).
    fn enqueue_effects(&mut self, module: &str, parsed: &ParsedFile) {
        for (i, stmt) in parsed.statements.iter().enumerate() {
            if matches!(stmt.kind, StmtKind::Effect | StmtKind::Import) {
                self.enqueue(module, i, "runs when the module is imported".to_owned());
            } else if let Some(why) = self.acts_on_import(module, parsed, stmt) {
                self.enqueue(module, i, why.to_owned());
            }
        }
    }

    fn enqueue(&mut self, module: &str, index: usize, reason: String) {
        if let std::collections::btree_map::Entry::Vacant(slot) =
            self.reached.entry((module.to_owned(), index))
        {
            slot.insert(reason.clone());
            self.work.push((module.to_owned(), index, reason));
        }
    }

    /// `name` as seen from module `module`. With `chained`, the caller
    /// follows a module-valued binding itself (it knows the attribute
    /// chains used on it); otherwise such a binding counts the whole module.
    fn name(&mut self, module: &str, name: &str, referrer: &str, chained: bool) {
        if !self
            .names_done
            .insert((module.to_owned(), name.to_owned(), chained))
        {
            return;
        }
        self.module_reached(module);
        let Some(view) = self.view(module) else {
            return;
        };
        let Some(parsed) = view.parsed.filter(|_| view.kind == ModuleKind::Local) else {
            return; // third-party / stdlib: covered by the module's identity
        };
        let binders: Vec<usize> = parsed
            .statements
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.binds.iter().any(|b| b == name) || s.imports.iter().any(|(b, _)| b == name)
            })
            .map(|(i, _)| i)
            .collect();
        if binders.is_empty() {
            let submodule = format!("{module}.{name}");
            if self.modules.contains_key(&submodule) {
                // Importing `pkg.sub` binds `sub` in `pkg`: with `chained`
                // the caller follows the attributes used on it.
                if chained {
                    self.module_reached(&submodule);
                    return;
                }
                self.fallback(
                    &submodule,
                    format!("module {submodule} is used as a value by {referrer}"),
                );
                return;
            }
            if self.builtins.contains(name)
                || matches!(
                    name,
                    "__name__"
                        | "__file__"
                        | "__doc__"
                        | "__spec__"
                        | "__package__"
                        | "__builtins__"
                        | "__loader__"
                        | "__path__"
                )
            {
                return;
            }
            let is_local_somewhere = parsed
                .statements
                .iter()
                .any(|s| s.locals.iter().any(|l| l == name));
            let may_bind = self.star_sources(module, parsed, name, referrer);
            if !may_bind && !is_local_somewhere {
                self.fallback(
                    module,
                    format!("the name {name} used by {referrer} is not bound statically"),
                );
            }
            return;
        }
        // A star import may bind it too (read by a later rebinding such
        // as `fit = fit.__wrapped__`, or rebinding it after).
        self.star_sources(module, parsed, name, referrer);
        for i in binders {
            self.enqueue(module, i, format!("used by {referrer}"));
            // Re-exports: follow what an import binds this name to.
            let targets: Vec<Bound> = parsed.statements[i]
                .imports
                .iter()
                .filter(|(b, _)| b == name)
                .map(|(_, t)| t.clone())
                .collect();
            for target in targets {
                self.follow(module, name, &target, referrer, chained);
            }
        }
    }

    fn follow(&mut self, module: &str, name: &str, target: &Bound, referrer: &str, chained: bool) {
        match target {
            Bound::From {
                module: m,
                level,
                name: original,
            } => {
                let Some(abs) = self.absolute(module, m, *level) else {
                    return;
                };
                let sub = if abs.is_empty() {
                    original.clone()
                } else {
                    format!("{abs}.{original}")
                };
                if self.modules.contains_key(&sub) {
                    if !chained {
                        self.fallback(
                            &sub,
                            format!("module {sub} is re-exported as {module}.{name}"),
                        );
                    }
                } else {
                    self.name(&abs, original, referrer, false);
                }
            }
            Bound::Module { module: m, level } => {
                if !chained {
                    if let Some(abs) = self.absolute(module, m, *level) {
                        self.fallback(
                            &abs,
                            format!("module {abs} is re-exported as {module}.{name}"),
                        );
                    }
                }
            }
            Bound::Star { .. } => {}
        }
    }

    /// What a reached statement needs in turn.
    fn statement(&mut self, module: &str, stmt: &TopStatement, referrer: &str) {
        if !self.subclass_discovery
            && stmt
                .attributes
                .iter()
                .any(|chain| chain.iter().any(|a| a == "__subclasses__"))
        {
            self.discover_subclasses();
        }
        if let Some(why) = &stmt.opaque {
            self.fallback(module, format!("{referrer} {why}"));
        }
        for (bound, target) in &stmt.imports {
            match target {
                Bound::Module { module: m, level } => {
                    if let Some(abs) = self.absolute(module, m, *level) {
                        self.module_reached(&abs);
                        let _ = bound;
                    }
                }
                Bound::From {
                    module: m,
                    level,
                    name,
                } => {
                    let Some(abs) = self.absolute(module, m, *level) else {
                        continue;
                    };
                    self.module_reached(&abs);
                    let sub = if abs.is_empty() {
                        name.clone()
                    } else {
                        format!("{abs}.{name}")
                    };
                    if self.modules.contains_key(&sub) {
                        self.module_reached(&sub);
                    }
                }
                Bound::Star { module: m, level } => {
                    if let Some(abs) = self.absolute(module, m, *level) {
                        self.module_reached(&abs);
                    }
                }
            }
        }
        let uses = stmt.uses.clone();
        for used in uses {
            self.use_name(module, stmt, &used, referrer);
        }
    }

    /// The module `name` is bound to in project module `module` by an
    /// import, if it is.
    fn module_binding(&self, module: &str, name: &str) -> Option<String> {
        let parsed = self
            .view(module)
            .filter(|v| v.kind == ModuleKind::Local)?
            .parsed?;
        match Self::binding_of(parsed, name)? {
            Bound::Module { module: m, level } => self.absolute(module, m, *level),
            Bound::From {
                module: m,
                level,
                name,
            } => {
                let abs = self.absolute(module, m, *level)?;
                let sub = if abs.is_empty() {
                    name.clone()
                } else {
                    format!("{abs}.{name}")
                };
                self.modules.contains_key(&sub).then_some(sub)
            }
            Bound::Star { .. } => None,
        }
    }

    fn binding_of<'p>(parsed: &'p ParsedFile, name: &str) -> Option<&'p Bound> {
        parsed
            .statements
            .iter()
            .flat_map(|s| s.imports.iter())
            .find(|(b, _)| b == name)
            .map(|(_, t)| t)
    }

    fn use_name(&mut self, module: &str, stmt: &TopStatement, used: &str, referrer: &str) {
        let parsed = self.view(module).and_then(|v| v.parsed);
        let binding = parsed.and_then(|p| Self::binding_of(p, used)).cloned();
        self.name(module, used, referrer, true);
        // A module-valued binding: follow the attribute chains used on it.
        let target = match binding {
            Some(Bound::From {
                module: m,
                level,
                name,
            }) => self.absolute(module, &m, level).and_then(|abs| {
                let sub = if abs.is_empty() {
                    name.clone()
                } else {
                    format!("{abs}.{name}")
                };
                self.modules.contains_key(&sub).then_some(sub)
            }),
            Some(Bound::Module { module: m, level }) => self.absolute(module, &m, level),
            Some(Bound::Star { .. }) => None,
            // A submodule bound in its package by being imported (as
            // `name` treats it when chained).
            None => {
                let sub = format!("{module}.{used}");
                self.modules.contains_key(&sub).then_some(sub)
            }
        };
        if let Some(target) = target {
            self.module_as_value(module, stmt, used, &target, referrer);
        }
    }

    /// `used` names module `target`: follow `used.attr...` chains; a bare
    /// use (passing the module around) counts the whole module.
    fn module_as_value(
        &mut self,
        _module: &str,
        stmt: &TopStatement,
        used: &str,
        target: &str,
        referrer: &str,
    ) {
        self.module_reached(target);
        if stmt.bare.iter().any(|b| b == used)
            && self
                .view(target)
                .is_some_and(|v| v.kind == ModuleKind::Local)
        {
            self.fallback(
                target,
                format!("{referrer} uses module {target} as a value"),
            );
        }
        let chains: Vec<Vec<String>> = stmt
            .attributes
            .iter()
            .filter(|c| c[0] == used)
            .cloned()
            .collect();
        for chain in chains {
            let mut current = target.to_owned();
            for attr in &chain[1..] {
                let sub = format!("{current}.{attr}");
                if self.modules.contains_key(&sub) {
                    self.module_reached(&sub);
                    current = sub;
                    continue;
                }
                // `m.alias.f` where `m` binds `alias` to a module by an
                // import: count that import and walk on into the module.
                if let Some(next) = self.module_binding(&current, attr) {
                    self.name(&current, attr, referrer, true);
                    self.module_reached(&next);
                    current = next;
                    continue;
                }
                self.name(&current, attr, referrer, false);
                break;
            }
        }
    }

    fn run(&mut self) {
        while let Some((module, index, _)) = self.work.pop() {
            let Some(parsed) = self.view(&module).and_then(|v| v.parsed) else {
                continue;
            };
            let stmt = parsed.statements[index].clone();
            let referrer = identity(&module, &stmt).display_name();
            self.statement(&module, &stmt, &referrer);
        }
    }
}

/// The structural identity of statement `stmt` of `module`.
fn identity(module: &str, stmt: &TopStatement) -> DefinitionId {
    DefinitionId {
        module: module.to_owned(),
        kind: stmt.id_kind,
        name: stmt.id_name.clone(),
        ordinal: stmt.ordinal,
    }
}

/// The definitions `function` of module `root` reaches, and the digest.
pub fn reach(
    modules: &HashMap<String, ModuleView<'_>>,
    builtins: &std::collections::HashSet<String>,
    root: &str,
    function: &str,
    python: &str,
) -> Reach {
    let mut w = Walker {
        modules,
        builtins,
        reached: BTreeMap::new(),
        effects_done: BTreeSet::new(),
        names_done: BTreeSet::new(),
        whole: BTreeMap::new(),
        external: BTreeSet::new(),
        work: Vec::new(),
        subclass_discovery: false,
    };
    w.name(root, function, "the cached call", false);
    w.run();
    // Whole-module fallbacks pull in everything those modules reach too.
    let mut expanded = BTreeSet::new();
    loop {
        let pending: Vec<String> = w
            .whole
            .keys()
            .filter(|m| !expanded.contains(*m))
            .cloned()
            .collect();
        if pending.is_empty() {
            break;
        }
        for module in pending {
            expanded.insert(module.clone());
            if let Some(parsed) = w.view(&module).and_then(|v| v.parsed) {
                for i in 0..parsed.statements.len() {
                    w.enqueue(&module, i, "whole module".to_owned());
                }
            }
        }
        w.run();
    }
    let mut definitions = Vec::new();
    let mut files = BTreeSet::new();
    for ((module, index), reason) in &w.reached {
        let Some(view) = w.view(module) else { continue };
        let Some(parsed) = view.parsed else { continue };
        let stmt = &parsed.statements[*index];
        if let Some(path) = &view.path {
            files.insert(path.clone());
        }
        let id = identity(module, stmt);
        definitions.push(Definition {
            name: id.display_name(),
            id,
            path: view.path.clone(),
            line: stmt.line,
            end_line: stmt.end_line,
            hash: hex(&stmt.hash),
            reason: reason.clone(),
        });
    }
    // Keyed and ordered by structural identity, not by position: moving
    // or adding unrelated code changes nothing.
    definitions.sort_by(|a, b| a.id.cmp(&b.id));
    let mut hasher = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"casher.function-digest.v2");
    field(python.as_bytes());
    field(function.as_bytes());
    for d in &definitions {
        field(d.id.to_string().as_bytes());
        field(d.hash.as_bytes());
    }
    for ext in &w.external {
        field(ext.as_bytes());
    }
    for module in w.effects_done.iter() {
        if let Some(path) = w.view(module).and_then(|v| v.path.clone()) {
            if w.view(module).is_some_and(|v| v.kind == ModuleKind::Local) {
                files.insert(path);
            }
        }
    }
    Reach {
        definitions,
        fallbacks: w
            .whole
            .into_iter()
            .map(|(module, reason)| Fallback { module, reason })
            .collect(),
        files: files.into_iter().collect(),
        digest: hasher.finalize().to_hex().to_string(),
    }
}

//! Walks the import graph from a root file: parse a wave of files in
//! parallel, resolve what they import, repeat with the newly found project
//! files until nothing new appears.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::classify::Classifier;
use crate::error::Result;
use crate::fsutil::StatStamp;
use crate::imports::ImportRecord;
use crate::index::{Cached, Index};
use crate::index::{ReachCache, ReachValidity, SymbolIndex};
use crate::interpreter::Interpreter;
use crate::parse::{parse_file, ParsedFile};
use crate::parsing::Parser;
use crate::reach::ModuleView;
use crate::report::{ModuleKind, ModuleReport};
use crate::resolve::{resolve_relative, Location, Resolver};

struct Node {
    location: Option<Location>,
    kind: ModuleKind,
    importers: BTreeSet<String>,
    parsed: Option<ParsedFile>,
    hash: Option<String>,
    distribution: Option<String>,
}

/// The outcome of a walk, before it becomes a report.
pub struct Walk {
    pub modules: Vec<ModuleReport>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    /// Function-level reachability, when a function was named.
    pub reach: Option<crate::reach::Reach>,
    pub root_facts: ParsedFile,
    /// Files actually read and parsed (not served by the index).
    pub parsed: usize,
}

pub struct Graph<'a> {
    interpreter: &'a Interpreter,
    resolver: &'a Resolver<'a>,
    index: &'a Index,
    nodes: HashMap<String, Node>,
    order: Vec<String>,
    warnings: Vec<String>,
    errors: Vec<String>,
    classifier: Classifier<'a>,
    parser: Parser<'a>,
    cache_dir: Option<PathBuf>,
    root_dir: PathBuf,
}

impl<'a> Graph<'a> {
    pub fn new(interpreter: &'a Interpreter, resolver: &'a Resolver<'a>, index: &'a Index) -> Self {
        Self {
            interpreter,
            resolver,
            index,
            nodes: HashMap::new(),
            order: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            classifier: Classifier::new(interpreter),
            parser: Parser::new(index),
            cache_dir: None,
            root_dir: PathBuf::new(),
        }
    }

    /// Walks from `root` (module `root_name`). A root that does not parse is
    /// an error; a dependency that does not parse is recorded in `errors`.
    /// Where the symbol index for function-level analysis lives.
    pub fn with_symbol_index(mut self, cache_dir: Option<PathBuf>, root_dir: PathBuf) -> Self {
        self.cache_dir = cache_dir;
        self.root_dir = root_dir;
        self
    }

    pub fn walk(mut self, root: &Path, root_name: &str, function: Option<&str>) -> Result<Walk> {
        self.parser = std::mem::replace(&mut self.parser, Parser::new(self.index))
            .with_statements(function.is_some());
        // The root is Python source whatever its name (a script may have
        // no `.py` suffix).
        let root_facts = match self.parser.parse_cached(root, true)? {
            Cached::Parsed(parsed) => parsed,
            Cached::Bytes(_) => parse_file(root)?,
        };
        self.nodes.insert(
            root_name.to_owned(),
            Node {
                location: Some(Location::File {
                    path: root.to_path_buf(),
                    package_dir: None,
                }),
                kind: ModuleKind::Local,
                importers: BTreeSet::new(),
                parsed: None,
                hash: Some(hex(&root_facts.hash)),
                distribution: None,
            },
        );
        self.order.push(root_name.to_owned());
        let mut wave: Vec<(String, ParsedFile)> = vec![(root_name.to_owned(), root_facts.clone())];
        let mut deferred_stars: Vec<(String, String, u32)> = Vec::new();
        while !wave.is_empty() {
            let mut next: Vec<(String, PathBuf)> = Vec::new();
            for (name, parsed) in &wave {
                let is_package = matches!(
                    self.nodes.get(name).and_then(|n| n.location.as_ref()),
                    Some(Location::File {
                        package_dir: Some(_),
                        ..
                    })
                );
                let package = if is_package {
                    name.clone()
                } else {
                    name.rsplit_once('.')
                        .map(|(p, _)| p.to_owned())
                        .unwrap_or_default()
                };
                let path = self.path_of(name);
                for line in &parsed.facts.opaque_dynamic_imports {
                    self.warnings.push(format!(
                        "{}:{line}: dynamic import with a computed name: its target is not tracked statically",
                        path.display()
                    ));
                }
                for record in &parsed.facts.imports {
                    self.import(
                        name,
                        &package,
                        &path,
                        record,
                        &mut next,
                        &mut deferred_stars,
                    );
                }
            }
            for (name, parsed) in &wave {
                if let Some(node) = self.nodes.get_mut(name) {
                    node.parsed = Some(parsed.clone());
                }
            }
            self.resolve_stars(&mut deferred_stars, &mut next);
            wave = self.parse_wave(next);
        }
        let parsed = self.parser.parsed();
        let builtins = self.interpreter.builtins.clone();
        let python = self.interpreter.version.clone();
        // Statements of this run's fresh parses; index hits have none.
        let fresh: HashMap<String, (ParsedFile, bool, Option<PathBuf>)> = if function.is_some() {
            self.nodes
                .iter()
                .filter_map(|(name, node)| {
                    let parsed = node.parsed.clone()?;
                    let is_package = matches!(
                        node.location,
                        Some(Location::File {
                            package_dir: Some(_),
                            ..
                        })
                    );
                    let path = match &node.location {
                        Some(Location::File { path, .. }) => Some(path.clone()),
                        _ => None,
                    };
                    Some((name.clone(), (parsed, is_package, path)))
                })
                .collect()
        } else {
            HashMap::new()
        };
        let (cache_dir, root_dir) = (self.cache_dir.clone(), self.root_dir.clone());
        let modules = self.into_modules();
        let reach = function.map(|function| {
            let validity: ReachValidity = modules
                .0
                .iter()
                .map(|m| {
                    let stamp = match (m.kind, &m.path) {
                        (ModuleKind::Local, Some(p)) => {
                            std::fs::metadata(p).ok().map(|meta| StatStamp::of(&meta))
                        }
                        _ => None,
                    };
                    (
                        m.name.clone(),
                        m.kind.as_str().to_owned(),
                        m.hash.clone(),
                        m.distribution.as_ref().map(|_| m.identity()),
                        stamp,
                    )
                })
                .collect();
            let key = format!("{root_name}:{function}:{python}");
            let mut cache = ReachCache::load(cache_dir.as_deref(), &root_dir);
            if let Some(reach) = cache.get(&key, &validity) {
                return reach;
            }
            let mut symbols = SymbolIndex::load(cache_dir.as_deref(), &root_dir);
            let mut sources: HashMap<String, (ParsedFile, bool)> = HashMap::new();
            for (name, (parsed, is_package, path)) in fresh {
                let mut parsed = parsed;
                if let Some(path) = &path {
                    if parsed.statements.is_empty() {
                        parsed.statements = symbols.statements(path).unwrap_or_default();
                    } else if let Ok(meta) = std::fs::metadata(path) {
                        symbols.put(path, StatStamp::of(&meta), parsed.statements.clone());
                    }
                }
                sources.insert(name, (parsed, is_package));
            }
            symbols.save();
            let views: HashMap<String, ModuleView<'_>> = modules
                .0
                .iter()
                .map(|m| {
                    let source = sources.get(&m.name);
                    (
                        m.name.clone(),
                        ModuleView {
                            kind: m.kind,
                            path: m.path.clone(),
                            hash: m.hash.clone(),
                            distribution: m.distribution.as_ref().map(|_| m.identity()),
                            parsed: source.map(|(p, _)| p),
                            is_package: source.is_some_and(|(_, pkg)| *pkg),
                        },
                    )
                })
                .collect();
            let reach = crate::reach::reach(&views, &builtins, root_name, function, &python);
            cache.put(key, validity, reach.clone());
            reach
        });
        Ok(Walk {
            parsed,
            modules: modules.0,
            warnings: modules.1,
            errors: modules.2,
            root_facts,
            reach,
        })
    }

    fn path_of(&self, name: &str) -> PathBuf {
        match self.nodes.get(name).and_then(|n| n.location.as_ref()) {
            Some(Location::File { path, .. }) => path.clone(),
            _ => PathBuf::from(name),
        }
    }

    fn import(
        &mut self,
        importer: &str,
        package: &str,
        importer_path: &Path,
        record: &ImportRecord,
        next: &mut Vec<(String, PathBuf)>,
        deferred_stars: &mut Vec<(String, String, u32)>,
    ) {
        let anchor = record.anchor.as_deref().unwrap_or(package);
        let Some(base) = resolve_relative(&record.module, record.level, anchor) else {
            let written = format!("{}{}", ".".repeat(record.level as usize), record.module);
            self.warnings.push(format!(
                "{}:{}: relative import `{written}` goes beyond the top-level package",
                importer_path.display(),
                record.line
            ));
            self.add_unresolved(&written, importer);
            return;
        };
        if base.is_empty() {
            return;
        }
        if !self.add_chain(&base, importer, importer_path, record.line, next) {
            return;
        }
        for name in &record.names {
            if name == "*" {
                deferred_stars.push((importer.to_owned(), base.clone(), record.line));
                continue;
            }
            // `from pkg import name`: a submodule if one exists, else an attribute.
            let submodule = format!("{base}.{name}");
            if let (chain, None) = self.resolver.resolve_chain(&submodule) {
                if let Some((_, location)) = chain.into_iter().last() {
                    self.add(&submodule, location, importer, next);
                }
            }
        }
    }

    /// Adds `dotted` and its ancestors; false when some part is not found.
    fn add_chain(
        &mut self,
        dotted: &str,
        importer: &str,
        importer_path: &Path,
        line: u32,
        next: &mut Vec<(String, PathBuf)>,
    ) -> bool {
        let (chain, failed) = self.resolver.resolve_chain(dotted);
        let found_parent = chain.last().map(|(name, _)| name.clone());
        for (name, location) in chain {
            self.add(&name, location, importer, next);
        }
        match failed {
            None => true,
            // A submodule missing from a package we do not analyze (`os.path`,
            // `six.moves`) is set up by that package at run time: it shares
            // the package's identity.
            Some(missing)
                if self.adopt_into_parent(found_parent.as_deref(), &missing, importer) =>
            {
                true
            }
            Some(_) => {
                // A stdlib module this platform lacks (`winreg` on Linux) is
                // expected to be missing: listed, but not worth a warning.
                let top = dotted.split('.').next().unwrap_or(dotted);
                let platform_specific = self.interpreter.stdlib_modules.contains(top);
                if !self.nodes.contains_key(dotted) && !platform_specific {
                    self.warnings.push(format!(
                        "{}:{line}: unresolved import `{dotted}`",
                        importer_path.display()
                    ));
                }
                self.add_unresolved(dotted, importer);
                false
            }
        }
    }

    fn adopt_into_parent(&mut self, parent: Option<&str>, missing: &str, importer: &str) -> bool {
        let Some(parent) = parent.and_then(|p| self.nodes.get(p)) else {
            return false;
        };
        if matches!(
            parent.kind,
            ModuleKind::Local | ModuleKind::Unresolved | ModuleKind::Extension
        ) {
            return false;
        }
        let (kind, distribution) = (parent.kind, parent.distribution.clone());
        let hash = parent.hash.clone();
        let node = self.nodes.entry(missing.to_owned()).or_insert_with(|| {
            self.order.push(missing.to_owned());
            Node {
                location: None,
                kind,
                importers: BTreeSet::new(),
                parsed: None,
                hash,
                distribution,
            }
        });
        node.importers.insert(importer.to_owned());
        true
    }

    fn add_unresolved(&mut self, name: &str, importer: &str) {
        let node = self.nodes.entry(name.to_owned()).or_insert_with(|| {
            self.order.push(name.to_owned());
            Node {
                location: None,
                kind: ModuleKind::Unresolved,
                importers: BTreeSet::new(),
                parsed: None,
                hash: None,
                distribution: None,
            }
        });
        if node.kind == ModuleKind::Unresolved {
            node.importers.insert(importer.to_owned());
        }
    }

    fn add(
        &mut self,
        name: &str,
        location: Location,
        importer: &str,
        next: &mut Vec<(String, PathBuf)>,
    ) {
        if let Some(node) = self.nodes.get_mut(name) {
            if name != importer {
                node.importers.insert(importer.to_owned());
            }
            return;
        }
        let (kind, distribution) = self.classifier.classify(name, &location);
        if let (ModuleKind::Local, Location::File { path, .. }) = (kind, &location) {
            next.push((name.to_owned(), path.clone()));
        }
        let mut importers = BTreeSet::new();
        importers.insert(importer.to_owned());
        self.order.push(name.to_owned());
        self.nodes.insert(
            name.to_owned(),
            Node {
                location: Some(location),
                kind,
                importers,
                parsed: None,
                hash: None,
                distribution,
            },
        );
    }

    fn resolve_stars(
        &mut self,
        deferred: &mut Vec<(String, String, u32)>,
        next: &mut Vec<(String, PathBuf)>,
    ) {
        let mut still_waiting = Vec::new();
        for (importer, base, line) in deferred.drain(..) {
            let Some(node) = self.nodes.get(&base) else {
                continue;
            };
            if node.kind != ModuleKind::Local || node.location.is_none() {
                continue;
            }
            let Some(parsed) = &node.parsed else {
                still_waiting.push((importer, base, line));
                continue;
            };
            let names = parsed.facts.all.clone().unwrap_or_default();
            for name in names {
                let submodule = format!("{base}.{name}");
                if let (chain, None) = self.resolver.resolve_chain(&submodule) {
                    if let Some((_, location)) = chain.into_iter().last() {
                        self.add(&submodule, location, &importer, next);
                    }
                }
            }
        }
        *deferred = still_waiting;
    }

    /// Parses (or fetches from the index) every new local file in parallel.
    fn parse_wave(&mut self, files: Vec<(String, PathBuf)>) -> Vec<(String, ParsedFile)> {
        let results = self.parser.parse_all(files);
        let mut wave = Vec::new();
        for (name, result) in results {
            match result {
                Ok(Cached::Parsed(parsed)) => {
                    if let Some(node) = self.nodes.get_mut(&name) {
                        node.hash = Some(hex(&parsed.hash));
                    }
                    wave.push((name, parsed));
                }
                Ok(Cached::Bytes(hash)) => {
                    if let Some(node) = self.nodes.get_mut(&name) {
                        node.hash = Some(hex(&hash));
                    }
                }
                Err(err) => {
                    self.errors.push(err.to_string());
                }
            }
        }
        wave
    }

    fn into_modules(mut self) -> (Vec<ModuleReport>, Vec<String>, Vec<String>) {
        // Extension modules and distribution-less third-party files are
        // identified by their bytes.
        let byte_hashed: Vec<(String, PathBuf)> = self
            .nodes
            .iter()
            .filter(|(_, n)| {
                n.hash.is_none()
                    && (n.kind == ModuleKind::Extension
                        || (n.kind == ModuleKind::Thirdparty && n.distribution.is_none()))
            })
            .filter_map(|(name, n)| match &n.location {
                Some(Location::File { path, .. }) => Some((name.clone(), path.clone())),
                _ => None,
            })
            .collect();
        for (name, path) in byte_hashed {
            match std::fs::metadata(&path).map(|m| StatStamp::of(&m)) {
                Ok(stamp) => {
                    let hash = match self.index.get(&path, &stamp) {
                        Some(Cached::Bytes(h)) => Some(h),
                        _ => crate::fsutil::read_regular(&path).ok().map(|b| {
                            let h = *blake3::hash(&b).as_bytes();
                            self.index.put(&path, stamp, Cached::Bytes(h));
                            h
                        }),
                    };
                    if let Some(node) = self.nodes.get_mut(&name) {
                        node.hash = hash.map(|h| hex(&h));
                    }
                }
                Err(err) => self
                    .errors
                    .push(format!("cannot read {}: {err}", path.display())),
            }
        }
        let modules = self
            .order
            .iter()
            .filter_map(|name| {
                let node = self.nodes.get(name)?;
                Some(ModuleReport {
                    name: name.clone(),
                    path: match &node.location {
                        Some(Location::File { path, .. }) => Some(path.clone()),
                        _ => None,
                    },
                    kind: node.kind,
                    hash: node.hash.clone(),
                    distribution: node.distribution.clone(),
                    requires: node
                        .distribution
                        .as_ref()
                        .and_then(|d| self.interpreter.requires.get(d))
                        .cloned()
                        .unwrap_or_default(),
                    imported_by: node.importers.iter().cloned().collect(),
                })
            })
            .collect();
        (modules, self.warnings, self.errors)
    }
}

pub fn hex(bytes: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*bytes).to_hex().to_string()
}

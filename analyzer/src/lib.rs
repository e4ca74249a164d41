//! casher's analyzer: which code does a Python function depend on, and what
//! is the hash of that code, ignoring formatting?
//!
//! Parsing uses ruff's parser; resolution follows CPython's runtime import
//! rules against the real target interpreter; project code is hashed as a
//! normalized AST, third-party code by distribution identity, the stdlib by
//! the Python version. The crate never prints: it returns a [`DepsReport`].

mod behaviour;
mod classify;
mod effects;
mod error;
mod fsutil;
mod graph;
mod guard;
pub mod identity;
mod imports;
mod index;
mod interpreter;
pub mod normalize;
mod parse;
mod parsing;
pub mod reach;
mod report;
mod resolve;
mod source;
mod symbols;

use std::path::{Path, PathBuf};

pub use error::{AnalyzerError, Result};
pub use identity::{DefinitionId, DefinitionKind, DefinitionName};
pub use imports::{ImportRecord, ModuleFacts};
pub use interpreter::Interpreter;
pub use parse::{parse_bytes, parse_file, ParsedFile};
pub use reach::{Definition, Fallback};
pub use report::{AnalysisStats, DepsReport, ModuleKind, ModuleReport, DIGEST_FORMAT_VERSION};
pub use resolve::{resolve_relative, Location, Resolver};

/// Version of the analyzer's cache bucket under the cache directory.
const CACHE_BUCKET: &str = "analyzer-v1";

/// How to analyze.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// The interpreter whose import system is followed (a path, or a name
    /// looked up on PATH).
    pub python: PathBuf,
    /// Where the interpreter answer and the parse index persist; `None`
    /// keeps everything in memory.
    pub cache_dir: Option<PathBuf>,
    /// Restrict the identity to this function of the root file.
    pub function: Option<String>,
    /// Directories searched before the interpreter's `sys.path`, like
    /// entries of `PYTHONPATH`.
    pub extra_paths: Vec<PathBuf>,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            python: PathBuf::from("python3"),
            cache_dir: None,
            function: None,
            extra_paths: Vec::new(),
        }
    }
}

/// The module name and `sys.path[0]` candidates of a root file: the file's
/// stem, prefixed by every enclosing regular package, so that relative
/// imports resolve as they do when the module is imported by name.
fn root_identity(root: &Path) -> (String, Vec<PathBuf>) {
    let dir = root.parent().unwrap_or(Path::new("/")).to_path_buf();
    let stem = root
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = Vec::new();
    if stem != "__init__" {
        parts.push(stem);
    }
    let mut current = dir.clone();
    while current.join("__init__.py").is_file() {
        let Some(name) = current.file_name() else {
            break;
        };
        parts.push(name.to_string_lossy().into_owned());
        let Some(parent) = current.parent() else {
            break;
        };
        current = parent.to_path_buf();
    }
    parts.reverse();
    // A module inside a package is imported by its dotted name from the
    // directory above the top package; its own directory is not on the
    // path (else `rich/json.py` would shadow the stdlib `json`). A plain
    // script runs with its directory as `sys.path[0]`.
    let dirs = if current == dir {
        vec![dir]
    } else {
        vec![current]
    };
    (parts.join("."), dirs)
}

/// Analyzes the code a root file (and optionally one of its functions)
/// depends on.
pub fn analyze(root: &Path, options: &AnalyzeOptions) -> Result<DepsReport> {
    let meta = std::fs::metadata(root).map_err(|source| AnalyzerError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return Err(AnalyzerError::IsDirectory {
            path: root.to_path_buf(),
        });
    }
    if !meta.is_file() {
        return Err(AnalyzerError::NotRegularFile {
            path: root.to_path_buf(),
        });
    }
    let root = std::fs::canonicalize(root).map_err(|source| AnalyzerError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let bucket = options.cache_dir.as_ref().map(|d| d.join(CACHE_BUCKET));
    let interpreter = Interpreter::query(&options.python, bucket.as_deref())?;
    let (root_name, mut script_dirs) = root_identity(&root);
    for extra in &options.extra_paths {
        let extra = std::fs::canonicalize(extra).unwrap_or_else(|_| extra.clone());
        if !script_dirs.contains(&extra) {
            script_dirs.insert(1.min(script_dirs.len()), extra);
        }
    }
    let index = index::Index::load(bucket.as_deref(), &script_dirs[0]);
    let symbol_root = script_dirs[0].clone();
    let resolver = Resolver::new(&interpreter, script_dirs);
    let walk = graph::Graph::new(&interpreter, &resolver, &index)
        .with_symbol_index(bucket.clone(), symbol_root.clone())
        .walk(&root, &root_name, options.function.as_deref());
    index.save();
    let walk = walk?;
    if let Some(function) = &options.function {
        if !walk.root_facts.facts.top_level_defs.contains(function) {
            return Err(AnalyzerError::FunctionNotFound {
                path: root.clone(),
                function: function.clone(),
            });
        }
    }
    let hashed = walk
        .modules
        .iter()
        .filter(|m| m.hash.is_some() && m.path.is_some())
        .count();
    let stats = AnalysisStats {
        parsed: walk.parsed,
        cached: hashed.saturating_sub(walk.parsed),
    };
    // With a function, the identity is what that function can reach;
    // without, the whole import closure.
    let digest = match &walk.reach {
        Some(reach) => reach.digest.clone(),
        None => report::digest(&interpreter.version, None, &walk.modules),
    };
    Ok(DepsReport {
        root,
        function: options.function.clone(),
        python: interpreter.version.clone(),
        digest,
        modules: walk.modules,
        warnings: walk.warnings,
        errors: walk.errors,
        stats,
        definitions: walk
            .reach
            .as_ref()
            .map(|r| r.definitions.clone())
            .unwrap_or_default(),
        fallbacks: walk
            .reach
            .as_ref()
            .map(|r| r.fallbacks.clone())
            .unwrap_or_default(),
        code_files: walk
            .reach
            .as_ref()
            .map(|r| r.files.clone())
            .unwrap_or_default(),
    })
}

//! What an analysis returns: the JSON contract of `casher deps --json`, and
//! the code digest that cache keys use.

use std::path::PathBuf;

use serde::Serialize;

/// Version of the code-digest composition (what goes into `digest`).
pub const DIGEST_FORMAT_VERSION: u32 = 2;

/// How a module is identified in the digest, decided by where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleKind {
    /// Project code: hashed as a normalized AST.
    Local,
    /// From an installed distribution: identified by `name==version`.
    Thirdparty,
    /// The standard library: identified by the Python version.
    Stdlib,
    /// A compiled module outside any distribution: hashed by its bytes.
    Extension,
    /// Compiled into the interpreter.
    Builtin,
    /// Not found: listed so that it appearing later changes the digest.
    Unresolved,
}

impl ModuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleKind::Local => "local",
            ModuleKind::Thirdparty => "thirdparty",
            ModuleKind::Stdlib => "stdlib",
            ModuleKind::Extension => "extension",
            ModuleKind::Builtin => "builtin",
            ModuleKind::Unresolved => "unresolved",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ModuleReport {
    pub name: String,
    pub path: Option<PathBuf>,
    pub kind: ModuleKind,
    pub hash: Option<String>,
    pub distribution: Option<String>,
    /// For a third-party module: the installed distributions its own
    /// distribution requires, transitively (`name==version`, sorted).
    pub requires: Vec<String>,
    pub imported_by: Vec<String>,
}

impl ModuleReport {
    /// What identifies a non-project module: its distribution and what
    /// that requires, else its hash, else its kind.
    pub fn identity(&self) -> String {
        match &self.distribution {
            Some(dist) if self.requires.is_empty() => dist.clone(),
            Some(dist) => format!("{dist} (requires {})", self.requires.join(", ")),
            None => self
                .hash
                .clone()
                .unwrap_or_else(|| self.kind.as_str().to_owned()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DepsReport {
    pub root: PathBuf,
    pub function: Option<String>,
    pub python: String,
    pub digest: String,
    pub modules: Vec<ModuleReport>,
    pub warnings: Vec<String>,
    /// Problems that make the digest untrustworthy (a dependency that does
    /// not parse). Non-empty means callers must not cache on this digest.
    pub errors: Vec<String>,
    pub stats: AnalysisStats,
    /// With `--function`: the top-level statements the function reaches.
    pub definitions: Vec<crate::reach::Definition>,
    /// With `--function`: modules counted whole, and why.
    pub fallbacks: Vec<crate::reach::Fallback>,
    /// With `--function`: the project files the identity depends on.
    pub code_files: Vec<PathBuf>,
}

/// How much work the analysis did (the index makes repeat runs cheap).
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisStats {
    /// Files read and parsed or byte-hashed in this run.
    pub parsed: usize,
    /// Files served from the persistent index.
    pub cached: usize,
}

/// The whole code identity: every module's name, kind and identity, the
/// interpreter version and the function name, in a canonical order.
pub fn digest(python: &str, function: Option<&str>, modules: &[ModuleReport]) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"casher.code-digest");
    field(&DIGEST_FORMAT_VERSION.to_le_bytes());
    field(&crate::normalize::NORMALIZED_FORMAT_VERSION.to_le_bytes());
    field(python.as_bytes());
    field(function.unwrap_or("").as_bytes());
    let mut sorted: Vec<&ModuleReport> = modules.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for module in sorted {
        field(module.name.as_bytes());
        field(module.kind.as_str().as_bytes());
        field(module.hash.as_deref().unwrap_or("").as_bytes());
        field(module.distribution.as_deref().unwrap_or("").as_bytes());
        field(module.requires.join(",").as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

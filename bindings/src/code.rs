//! Code inputs for `@cached`: the normalized-AST hash of a project source
//! file, remembered per process by stat stamp so a hit re-checks code with
//! one `stat` per file.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use casher_analyzer::DefinitionId;
use casher_store::{CodeOracle, PerProcess};

type Stamp = (u64, i64, i64, i64, i64, u64);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    (
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino(),
    )
}

type Memo = Mutex<HashMap<PathBuf, (Stamp, Option<String>)>>;

/// Per process: a lock another thread held when the process was forked
/// would stay held in the child.
fn memo() -> &'static Memo {
    static MEMO: PerProcess<Memo> = PerProcess::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The normalized hash of a Python source file; `None` if it cannot be read
/// or does not parse (then the lookup misses, and the run reports it).
pub fn normalized_hash(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let now = stamp(&meta);
    if let Some((s, hash)) = memo().lock().ok()?.get(path) {
        if *s == now {
            return hash.clone();
        }
    }
    let hash = casher_analyzer::parse_file(path)
        .ok()
        .map(|parsed| blake3::Hash::from_bytes(parsed.hash).to_hex().to_string());
    if let Ok(mut memo) = memo().lock() {
        memo.insert(path.to_path_buf(), (now, hash.clone()));
    }
    hash
}

/// Project source: a `.py` file outside the interpreter's own trees.
pub struct LocalCode {
    pub non_local: Vec<PathBuf>,
}

impl LocalCode {
    pub fn hash_if_local(&self, path: &Path) -> Option<String> {
        if path.extension().is_none_or(|e| e != "py") {
            return None;
        }
        if self.non_local.iter().any(|root| path.starts_with(root)) {
            return None;
        }
        normalized_hash(path)
    }
}

/// Prefix of the code input that stands for a function's reachable code.
pub const FUNCTION_INPUT: &str = "function:";

/// A function's code identity (what it can reach), with the stamps of the
/// files it was computed from: re-analyzed only when one of them changes.
struct FunctionIdentity {
    files: Vec<(PathBuf, Stamp)>,
    digest: String,
    files_only: Vec<PathBuf>,
    definitions: Vec<ReachedDefinition>,
}

/// One statement a function reaches: its structural identity, file and
/// hash.
#[derive(Clone)]
pub struct ReachedDefinition {
    pub id: DefinitionId,
    pub path: PathBuf,
    pub line: u32,
    pub end_line: u32,
    pub hash: String,
}

/// What a function's code identity is made of.
pub struct Identity {
    pub digest: String,
    pub files: Vec<PathBuf>,
    pub definitions: Vec<ReachedDefinition>,
}

/// Prefix of the inputs that name one reached definition (they come
/// first, so a miss names what changed). The full name is
/// `definition:<function>:<DefinitionId>:<file>`; see [`definition_input`].
pub const DEFINITION_INPUT: &str = "definition:";

/// The name of the code input for one definition `function` reaches.
pub fn definition_input(function: &str, d: &ReachedDefinition) -> String {
    format!("{DEFINITION_INPUT}{function}:{}:{}", d.id, d.path.display())
}

/// The function and definition identity a definition input names; `None`
/// for anything else (an input recorded by an older casher: it misses).
pub fn parse_definition_input(name: &str) -> Option<(&str, DefinitionId)> {
    let rest = name.strip_prefix(DEFINITION_INPUT)?;
    let (function, rest) = rest.split_once(':')?;
    // The identity's text form has no `:`; the file (which may) follows.
    let (id, _file) = rest.split_once(':')?;
    Some((function, id.parse().ok()?))
}

type FunctionMemo = Mutex<HashMap<(PathBuf, String), FunctionIdentity>>;

/// Per process, like [`memo`].
fn function_memo() -> &'static FunctionMemo {
    static MEMO: PerProcess<FunctionMemo> = PerProcess::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Where the analyzer looks: the interpreter and the cache directory.
#[derive(Clone)]
pub struct Analysis {
    pub python: PathBuf,
    pub cache_dir: PathBuf,
}

impl Analysis {
    /// The function-level digest of `function` in `file` and the project
    /// files it covers; `None` when the analysis is not trustworthy (a
    /// dependency does not parse), so callers fall back to whole modules.
    pub fn function_identity(&self, file: &Path, function: &str) -> Option<Identity> {
        let key = (file.to_path_buf(), function.to_owned());
        if let Some(id) = function_memo().lock().ok()?.get(&key) {
            let unchanged = id
                .files
                .iter()
                .all(|(p, s)| std::fs::metadata(p).is_ok_and(|m| stamp(&m) == *s));
            if unchanged {
                return Some(Identity {
                    digest: id.digest.clone(),
                    files: id.files_only.clone(),
                    definitions: id.definitions.clone(),
                });
            }
        }
        let options = casher_analyzer::AnalyzeOptions {
            python: self.python.clone(),
            cache_dir: Some(self.cache_dir.clone()),
            function: Some(function.to_owned()),
            extra_paths: Vec::new(),
        };
        let report = casher_analyzer::analyze(file, &options).ok()?;
        if !report.errors.is_empty() || report.code_files.is_empty() {
            return None;
        }
        let mut files_only = report.code_files.clone();
        if !files_only.contains(&report.root) {
            files_only.push(report.root.clone());
        }
        let files = files_only
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok().map(|m| (p.clone(), stamp(&m))))
            .collect();
        let definitions: Vec<ReachedDefinition> = report
            .definitions
            .iter()
            .filter_map(|d| {
                Some(ReachedDefinition {
                    id: d.id.clone(),
                    path: d.path.clone()?,
                    line: d.line,
                    end_line: d.end_line,
                    hash: d.hash.clone(),
                })
            })
            .collect();
        if let Ok(mut memo) = function_memo().lock() {
            memo.insert(
                key,
                FunctionIdentity {
                    files,
                    digest: report.digest.clone(),
                    files_only: files_only.clone(),
                    definitions: definitions.clone(),
                },
            );
        }
        Some(Identity {
            digest: report.digest,
            files: files_only,
            definitions,
        })
    }
}

/// A function's identity as one lookup needs it: the digest and each
/// reached definition's hash by identity.
struct Resolved {
    digest: String,
    definitions: HashMap<DefinitionId, String>,
}

/// Identities resolved during one lookup, by (source file, function).
type ResolvedByFunction = HashMap<(PathBuf, String), Option<std::rc::Rc<Resolved>>>;

/// Checks code inputs against the files as they are now: a module by its
/// normalized hash, a function by what it can reach. A record holds one
/// input per reached definition plus the whole identity: each function is
/// resolved (its files stat'ed) once per lookup, not once per input.
pub struct Oracle<'a> {
    analysis: &'a Analysis,
    resolved: std::cell::RefCell<ResolvedByFunction>,
}

impl<'a> Oracle<'a> {
    pub fn new(analysis: &'a Analysis) -> Self {
        Self {
            analysis,
            resolved: std::cell::RefCell::new(HashMap::new()),
        }
    }

    fn resolve(&self, file: &Path, function: &str) -> Option<std::rc::Rc<Resolved>> {
        let key = (file.to_path_buf(), function.to_owned());
        if let Some(found) = self.resolved.borrow().get(&key) {
            return found.clone();
        }
        let found = self.analysis.function_identity(file, function).map(|id| {
            std::rc::Rc::new(Resolved {
                digest: id.digest,
                definitions: id.definitions.into_iter().map(|d| (d.id, d.hash)).collect(),
            })
        });
        self.resolved.borrow_mut().insert(key, found.clone());
        found
    }
}

impl CodeOracle for Oracle<'_> {
    fn code_hash(&self, name: &str, path: Option<&Path>) -> Option<String> {
        if let Some(function) = name.strip_prefix(FUNCTION_INPUT) {
            return self.resolve(path?, function).map(|r| r.digest.clone());
        }
        if name.starts_with(DEFINITION_INPUT) {
            let (function, id) = parse_definition_input(name)?;
            return self.resolve(path?, function)?.definitions.get(&id).cloned();
        }
        normalized_hash(path?)
    }
}

//! What the target interpreter's import system looks like, asked once and
//! cached: its `sys.path`, stdlib location, built-in and frozen modules,
//! suffixes, editable-install mappings and installed distributions.
//!
//! The answer is reused only while the interpreter binary, `PYTHONPATH` and
//! every site directory (where `.pth` files and dist-info folders live) are
//! unchanged, so installing a package or a `.pth` file is seen at once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{AnalyzerError, Result};
use crate::fsutil::{stat_stamp, write_atomic, StatStamp};

const PROBE: &str = include_str!("../probe/interpreter_probe.py");

/// The probe's answer, as printed by `probe/interpreter_probe.py`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Interpreter {
    pub executable: PathBuf,
    pub version: String,
    pub implementation: String,
    pub sys_path: Vec<PathBuf>,
    pub stdlib_dirs: Vec<PathBuf>,
    pub site_dirs: Vec<PathBuf>,
    pub builtin_modules: HashSet<String>,
    /// Names of the `builtins` module (`len`, `print`, ...).
    #[serde(default)]
    pub builtins: HashSet<String>,
    pub frozen_modules: HashSet<String>,
    pub stdlib_modules: HashSet<String>,
    pub extension_suffixes: Vec<String>,
    pub source_suffixes: Vec<String>,
    pub bytecode_suffixes: Vec<String>,
    /// setuptools editable finders: top-level name -> source path.
    pub editable: HashMap<String, PathBuf>,
    /// Top-level import name -> `name==version`.
    pub distributions: HashMap<String, String>,
    /// `name==version` -> the installed distributions it requires
    /// (`Requires-Dist`, transitively, extras left out), sorted: a
    /// third-party module's identity covers the code it runs.
    #[serde(default)]
    pub requires: HashMap<String, Vec<String>>,
}

/// What the cached answer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Validity {
    /// Bumped when the probe asks for more.
    probe_version: u32,
    python: PathBuf,
    python_stamp: Option<StatStamp>,
    pythonpath: Option<String>,
    site_stamps: Vec<(PathBuf, Option<StatStamp>)>,
}

#[derive(Serialize, Deserialize)]
struct CachedAnswer {
    validity: Validity,
    interpreter: Interpreter,
}

/// Finds `python` on PATH when it is a bare name, like a shell would.
pub fn locate(python: &Path) -> Result<PathBuf> {
    if python.components().count() > 1 {
        return Ok(python.to_path_buf());
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path_var) {
        let candidate = dir.join(python);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(AnalyzerError::Interpreter {
        python: python.display().to_string(),
        reason: "not found on PATH".to_owned(),
    })
}

impl Interpreter {
    /// Asks `python` (cached under `cache_dir` when given).
    pub fn query(python: &Path, cache_dir: Option<&Path>) -> Result<Self> {
        let python = locate(python)?;
        let cache_file = cache_dir.map(|dir| {
            let key = blake3::hash(python.as_os_str().as_encoded_bytes());
            dir.join("interpreters")
                .join(format!("{}.json", &key.to_hex()[..32]))
        });
        let validity_now = |site_dirs: &[PathBuf]| Validity {
            probe_version: 3,
            python: python.clone(),
            python_stamp: stat_stamp(&python),
            pythonpath: std::env::var("PYTHONPATH").ok(),
            site_stamps: site_dirs
                .iter()
                .map(|d| (d.clone(), stat_stamp(d)))
                .collect(),
        };
        if let Some(file) = &cache_file {
            if let Some(cached) = std::fs::read(file)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<CachedAnswer>(&bytes).ok())
            {
                if cached.validity == validity_now(&cached.interpreter.site_dirs) {
                    return Ok(cached.interpreter);
                }
            }
        }
        let interpreter = Self::run_probe(&python)?;
        if let Some(file) = &cache_file {
            let answer = CachedAnswer {
                validity: validity_now(&interpreter.site_dirs),
                interpreter: interpreter.clone(),
            };
            if let Ok(bytes) = serde_json::to_vec(&answer) {
                if let Err(err) = write_atomic(file, &bytes) {
                    tracing::warn!(
                        "could not cache the interpreter answer in {}: {err}",
                        file.display()
                    );
                }
            }
        }
        Ok(interpreter)
    }

    fn run_probe(python: &Path) -> Result<Self> {
        let fail = |reason: String| AnalyzerError::Interpreter {
            python: python.display().to_string(),
            reason,
        };
        let output = Command::new(python)
            .arg("-c")
            .arg(PROBE)
            .output()
            .map_err(|e| fail(e.to_string()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(fail(format!(
                "the probe exited with {}: {}",
                output.status,
                stderr.trim()
            )));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| fail(format!("unexpected probe output: {e}")))
    }

    /// All suffixes FileFinder tries, in its order: extension modules, then
    /// source, then bytecode.
    pub fn suffixes(&self) -> impl Iterator<Item = &str> {
        self.extension_suffixes
            .iter()
            .chain(&self.source_suffixes)
            .chain(&self.bytecode_suffixes)
            .map(String::as_str)
    }
}

//! `casher._native`: thin glue from Python to the Rust crates. No logic lives
//! here; errors become the Python exceptions a Python user expects.

use std::path::PathBuf;

mod cache;
mod code;
mod errors;
mod hashing;
mod server;
mod values;

use casher_analyzer::{analyze, AnalyzeOptions, AnalyzerError};
use errors::CasherError;
use pyo3::exceptions::{PyFileNotFoundError, PyIsADirectoryError, PyOSError, PySyntaxError};
use pyo3::prelude::*;

fn to_py_err(err: AnalyzerError) -> PyErr {
    let message = err.to_string();
    match err {
        AnalyzerError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(message)
        }
        AnalyzerError::Io { .. } => PyOSError::new_err(message),
        AnalyzerError::IsDirectory { .. } => PyIsADirectoryError::new_err(message),
        AnalyzerError::Syntax {
            path, line, column, ..
        } => PySyntaxError::new_err((
            message,
            (path.display().to_string(), line, column, None::<String>),
        )),
        _ => CasherError::new_err(message),
    }
}

/// Analyze `path` like `casher deps --json` and return the report as JSON text.
#[pyfunction]
#[pyo3(signature = (path, function=None, python=None, cache_dir=None))]
fn deps_json(
    py: Python<'_>,
    path: PathBuf,
    function: Option<String>,
    python: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
) -> PyResult<String> {
    let cache_dir = cache_dir.filter(|dir| match casher_store::ensure_cache_dir(dir) {
        Ok(()) => true,
        Err(err) => {
            // The analysis still works, only without the persistent index.
            tracing_warn(&err.to_string());
            false
        }
    });
    let options = AnalyzeOptions {
        python: python.unwrap_or_else(|| PathBuf::from("python3")),
        cache_dir,
        function,
        extra_paths: Vec::new(),
    };
    let report = py.detach(|| analyze(&path, &options)).map_err(to_py_err)?;
    serde_json::to_string(&report).map_err(|e| CasherError::new_err(e.to_string()))
}

/// The cache directory casher uses when started in `cwd` (same rules as the CLI).
#[pyfunction]
#[pyo3(signature = (cwd, explicit=None))]
fn cache_dir(cwd: PathBuf, explicit: Option<PathBuf>) -> PyResult<PathBuf> {
    casher_store::cache_dir(explicit.as_deref(), &cwd)
        .map(|(dir, _)| dir)
        .map_err(|e| CasherError::new_err(e.to_string()))
}

/// Warns through Python's `warnings`-free path: the `casher` logger.
fn tracing_warn(message: &str) {
    Python::attach(|py| {
        if let Ok(logging) = py.import("logging") {
            if let Ok(logger) = logging.call_method1("getLogger", ("casher",)) {
                let _ = logger.call_method1("warning", (message,));
            }
        }
    });
}

/// The normalized-AST hash of a piece of source (a function defined in a
/// notebook has no file to check later). `None` when it does not parse.
#[pyfunction]
fn source_hash(source: &str) -> Option<String> {
    casher_analyzer::parse_bytes(std::path::Path::new("<source>"), source.as_bytes())
        .ok()
        .map(|parsed| blake3::Hash::from_bytes(parsed.hash).to_hex().to_string())
}

/// The invocation key of a function call: the shared key builder with the
/// function's identity, its argument digest and the names of the selected
/// env vars.
/// The working directory is part of it, as for `casher run`: relative paths
/// in arguments mean what the caller passed, from where it called.
#[pyfunction]
fn run_key(
    function: &str,
    module_path: &str,
    args_digest: &str,
    python: &str,
    env: Vec<String>,
    cwd: PathBuf,
) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut key = casher_record::KeyBuilder::new("casher.function.v2");
    key.field("function", function.as_bytes())
        .field("module_path", module_path.as_bytes())
        .field("args", args_digest.as_bytes())
        .field("python", python.as_bytes())
        .field("cwd", cwd.as_os_str().as_bytes());
    // Only the names: their values are inputs of each variant, hashed with
    // the store's secret (a key directory's name reveals nothing of them).
    let mut env = env;
    env.sort();
    env.dedup();
    for name in &env {
        key.env_name(name);
    }
    key.finish()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CasherError", m.py().get_type::<CasherError>())?;
    m.add_function(wrap_pyfunction!(deps_json, m)?)?;
    m.add_function(wrap_pyfunction!(cache_dir, m)?)?;
    m.add_function(wrap_pyfunction!(run_key, m)?)?;
    m.add_function(wrap_pyfunction!(source_hash, m)?)?;
    m.add_function(wrap_pyfunction!(server::watch_descriptors, m)?)?;
    m.add_class::<hashing::Hasher>()?;
    m.add_class::<cache::Cache>()?;
    m.add_class::<cache::TracedRun>()?;
    m.add_class::<server::Server>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

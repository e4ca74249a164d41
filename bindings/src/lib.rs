//! `casher._native`: thin glue from Python to the Rust crates. No logic lives
//! here; errors become the Python exceptions a Python user expects.

use std::path::PathBuf;

use casher_analyzer::{analyze, AnalyzeOptions, AnalyzerError};
use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyIsADirectoryError, PyOSError, PySyntaxError,
};
use pyo3::prelude::*;

create_exception!(
    _native,
    CasherError,
    PyException,
    "Base class of casher's own errors."
);

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

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CasherError", m.py().get_type::<CasherError>())?;
    m.add_function(wrap_pyfunction!(deps_json, m)?)?;
    m.add_function(wrap_pyfunction!(cache_dir, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

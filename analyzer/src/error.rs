//! The analyzer's errors. Each carries the file (and line) it concerns, and
//! says what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AnalyzerError {
    /// The file could not be read (missing, unreadable, not a file).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Not a regular file (a FIFO, a device, a socket): never opened, since
    /// reading one could block forever or have side effects.
    #[error("{}: not a regular file\nhint: a Python module must be a regular file", path.display())]
    NotRegularFile { path: PathBuf },

    /// Nesting too deep to analyze safely (CPython itself refuses to
    /// compile far less deep code).
    #[error("{}:{line}: {message}\nhint: split the expression; CPython does not compile code nested this deeply either", path.display())]
    TooDeep {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A directory was given where a Python file is needed.
    #[error("{} is a directory\nhint: give the Python file that defines the function, e.g. {}/main.py", path.display(), path.display())]
    IsDirectory { path: PathBuf },

    /// The source does not parse. The hash of unparseable code cannot be
    /// trusted, so this is an error rather than a warning.
    #[error("{}:{line}:{column}: syntax error: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// A PEP 263 coding cookie names an encoding we cannot decode.
    #[error("{}: unknown source encoding {encoding:?} in the coding cookie\nhint: save the file as UTF-8", path.display())]
    UnknownEncoding { path: PathBuf, encoding: String },

    /// The bytes are not valid in the declared (or default UTF-8) encoding.
    #[error("{}: the file is not valid {encoding}\nhint: fix the bytes or declare the right encoding with a `# -*- coding: ... -*-` line", path.display())]
    Decode { path: PathBuf, encoding: String },

    /// The target interpreter could not be asked for its import system.
    #[error("cannot query the Python interpreter {python}: {reason}\nhint: pass --python PATH to name a working interpreter")]
    Interpreter { python: String, reason: String },

    /// `--function NAME` names nothing defined at the top level of the file.
    #[error("{}: no top-level function or class named {function:?}\nhint: run `casher deps {}` without --function to see the module", path.display(), path.display())]
    FunctionNotFound { path: PathBuf, function: String },
}

pub type Result<T, E = AnalyzerError> = std::result::Result<T, E>;

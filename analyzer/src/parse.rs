//! One file in, one [`ParsedFile`] out: its normalized hash and what it
//! imports. This is the unit of work that runs in parallel and is cached in
//! the persistent index.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{AnalyzerError, Result};
use crate::imports::{ImportVisitor, ModuleFacts};
use crate::normalize::module_hash;
use crate::source::{decode, line_column};

/// What the analyzer keeps of a parsed Python file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParsedFile {
    /// Normalized-AST hash of the whole module.
    pub hash: [u8; 32],
    pub facts: ModuleFacts,
    /// The top-level statements, for function-level reachability. Kept out
    /// of the main index (they are large): see `SymbolIndex`.
    #[serde(skip, default)]
    pub statements: Vec<crate::symbols::TopStatement>,
}

/// Reads, decodes and parses a Python file.
pub fn parse_file(path: &Path) -> Result<ParsedFile> {
    parse_file_with(path, true)
}

/// Like [`parse_file`]; `statements: false` skips the per-statement
/// symbols (only function-level analysis needs them, and they double the
/// cost of a parse).
pub fn parse_file_with(path: &Path, statements: bool) -> Result<ParsedFile> {
    let bytes = crate::fsutil::read_regular(path)?;
    parse_source(path, &bytes, statements)
}

/// Parses source bytes as if read from `path` (used for messages only).
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<ParsedFile> {
    parse_source(path, bytes, true)
}

fn parse_source(path: &Path, bytes: &[u8], statements: bool) -> Result<ParsedFile> {
    let source = decode(path, bytes)?;
    // The tree is built, analyzed and dropped on a thread with a stack
    // sized for it: no input can overflow the stack.
    crate::guard::with_stack_for(path, &source, || analyze_source(path, &source, statements))
}

fn analyze_source(path: &Path, source: &str, statements: bool) -> Result<ParsedFile> {
    let parsed = ruff_python_parser::parse_module(source).map_err(|err| {
        let (line, column) = line_column(source, err.location.start().to_usize());
        AnalyzerError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: err.error.to_string(),
        }
    })?;
    let body = &parsed.syntax().body;
    if let Some(offset) = crate::guard::too_deep(body) {
        let (line, _) = line_column(source, offset.to_usize());
        return Err(AnalyzerError::TooDeep {
            path: path.to_path_buf(),
            line,
            message: format!("nested more than {} levels deep", crate::guard::MAX_NESTING),
        });
    }
    let line_starts = line_starts(source);
    let line_of = |offset: ruff_text_size::TextSize| {
        let index = line_starts.partition_point(|&start| start <= offset.to_usize());
        u32::try_from(index).unwrap_or(u32::MAX)
    };
    Ok(ParsedFile {
        hash: *module_hash(body).as_bytes(),
        facts: ImportVisitor::collect(body, &line_starts),
        statements: if statements {
            crate::symbols::collect(body, line_of)
        } else {
            Vec::new()
        },
    })
}

fn line_starts(source: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(source.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

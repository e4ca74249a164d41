//! Parsing a wave of files: index hits served in place (a stat and a
//! lookup), real parses in parallel, every result remembered in the index.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::error::{AnalyzerError, Result};
use crate::fsutil::StatStamp;
use crate::index::{Cached, Index};
use crate::parse::parse_file_with;
use casher_forksafe::in_pool;

pub struct Parser<'a> {
    index: &'a Index,
    parsed: AtomicUsize,
    /// Collect per-statement symbols (function-level analysis).
    statements: bool,
}

impl<'a> Parser<'a> {
    pub fn new(index: &'a Index) -> Self {
        Self {
            index,
            parsed: AtomicUsize::new(0),
            statements: false,
        }
    }

    pub fn with_statements(mut self, statements: bool) -> Self {
        self.statements = statements;
        self
    }

    /// Files actually read and parsed (or byte-hashed) so far.
    pub fn parsed(&self) -> usize {
        self.parsed.load(Ordering::Relaxed)
    }

    fn stamp(path: &Path) -> Result<StatStamp> {
        let meta = std::fs::metadata(path).map_err(|source| AnalyzerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(StatStamp::of(&meta))
    }

    /// Parses (or fetches from the index) every file. Index hits are done in
    /// place, since waking the thread pool would cost more than they do.
    pub fn parse_all(&self, files: Vec<(String, PathBuf)>) -> Vec<(String, Result<Cached>)> {
        let mut results = Vec::with_capacity(files.len());
        let mut misses = Vec::new();
        for (name, path) in files {
            match Self::stamp(&path).map(|stamp| self.index.get(&path, &stamp)) {
                Ok(Some(hit)) => results.push((name, Ok(hit))),
                Ok(None) => misses.push((name, path)),
                Err(err) => results.push((name, Err(err))),
            }
        }
        let parse = |(name, path): (String, PathBuf)| {
            let result = self.parse_cached(&path, false);
            (name, result)
        };
        if misses.len() > 1 {
            results.extend(in_pool(|| {
                misses.into_par_iter().map(parse).collect::<Vec<_>>()
            }));
        } else {
            results.extend(misses.into_iter().map(parse));
        }
        results
    }

    /// Source files are parsed; anything else (bytecode) is hashed by bytes.
    /// `force_source` parses whatever the name (a script without `.py`).
    pub fn parse_cached(&self, path: &Path, force_source: bool) -> Result<Cached> {
        let stamp = Self::stamp(path)?;
        if let Some(hit) = self.index.get(path, &stamp) {
            return Ok(hit);
        }
        let is_source = force_source || path.extension().is_some_and(|e| e == "py" || e == "pyw");
        self.parsed.fetch_add(1, Ordering::Relaxed);
        let value = if is_source {
            Cached::Parsed(parse_file_with(path, self.statements)?)
        } else {
            let bytes = crate::fsutil::read_regular(path)?;
            Cached::Bytes(*blake3::hash(&bytes).as_bytes())
        };
        self.index.put(path, stamp, value.clone());
        Ok(value)
    }
}

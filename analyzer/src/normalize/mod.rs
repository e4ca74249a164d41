//! Normalized-AST hashing: equal for code that differs only in trivia
//! (comments, whitespace, quotes, parentheses, trailing commas, docstrings),
//! different for any edit that can change behaviour.
//!
//! The walk is exhaustive over ruff's node enums, so a parser upgrade that adds
//! a node kind fails to compile here instead of silently hashing nothing.

mod expr;
mod pattern;
mod sink;
mod stmt;

pub use sink::{canonical_int, Sink, NORMALIZED_FORMAT_VERSION};

use ruff_python_ast::Stmt;

/// Walks a tree and feeds its canonical encoding into a [`Sink`].
pub struct Encoder {
    sink: Sink,
}

impl Encoder {
    pub fn new(domain: &str) -> Self {
        Self {
            sink: Sink::new(domain),
        }
    }

    /// Encodes a module body (docstring dropped).
    pub fn module(&mut self, body: &[Stmt]) {
        self.body(body, true);
    }

    /// Encodes a single statement, as used for per-definition hashes.
    pub fn statement(&mut self, stmt: &Stmt) {
        self.stmt(stmt);
    }

    pub fn finish(self) -> blake3::Hash {
        self.sink.finish()
    }
}

/// The normalized hash of a whole module.
pub fn module_hash(body: &[Stmt]) -> blake3::Hash {
    let mut encoder = Encoder::new("casher.module");
    encoder.module(body);
    encoder.finish()
}

#[cfg(test)]
mod tests;

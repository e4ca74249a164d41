//! Parsing and analysis never overflow the stack.
//!
//! ruff's parser, our visitors and even dropping an AST recurse once per
//! level of nesting, and a file can nest as deep as it is long (a 50k-term
//! `1+1+...`, 100k brackets, long call or attribute chains). A stack
//! overflow aborts the process: `casher deps` dies, and so does the user's
//! Python process when such a file is in a cached function's closure. So
//! each file is parsed on a thread whose stack is sized from an upper bound
//! of its nesting (one cheap lexer pass), and a tree nested deeper than
//! [`MAX_NESTING`] is refused as a per-file error (with its line), before
//! any recursive pass of ours runs on it.

use std::path::Path;

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, Pattern, Stmt};
use ruff_python_parser::{lexer, Mode};

use crate::error::{AnalyzerError, Result};

/// Deepest syntax tree analyzed. CPython refuses far less (3.11 compiles
/// about 3000 levels), so no importable module is refused.
pub(crate) const MAX_NESTING: usize = 10_000;

/// CPython's tokenizer refuses more nested brackets than this
/// ("too many nested parentheses"), so such a file never imports.
const MAX_BRACKETS: usize = 200;

/// Stack for our own passes over a tree of at most [`MAX_NESTING`] levels.
const BASE_STACK: usize = 64 << 20;
/// A generous bound of the stack one level of nesting costs the parser
/// (and dropping the tree), unoptimized builds included.
const STACK_PER_LEVEL: usize = 8 << 10;
/// Beyond this the file is refused rather than given a bigger stack.
const MAX_STACK: usize = 4 << 30;

/// An upper bound of how deep the parser may recurse on `source`: nesting
/// cannot span logical lines except through indentation, so the most
/// tokens in one logical line plus the number of indents bounds it.
/// Returns the bound and the (1-based) line where the longest line starts;
/// brackets nested deeper than CPython allows are an error.
fn nesting_bound(path: &Path, source: &str) -> Result<(usize, usize)> {
    let mut lexer = lexer::lex(source, Mode::Module);
    let (mut longest, mut longest_line) = (0usize, 1usize);
    let (mut current, mut line, mut start_line, mut indents) = (0usize, 1usize, 1usize, 0usize);
    let mut brackets = 0usize;
    loop {
        let kind = lexer.next_token();
        match kind {
            TokenKind::Lpar | TokenKind::Lsqb | TokenKind::Lbrace => {
                brackets += 1;
                if brackets > MAX_BRACKETS {
                    return Err(AnalyzerError::TooDeep {
                        path: path.to_path_buf(),
                        line: start_line,
                        message: format!(
                            "more than {MAX_BRACKETS} nested brackets (CPython's limit)"
                        ),
                    });
                }
            }
            TokenKind::Rpar | TokenKind::Rsqb | TokenKind::Rbrace => {
                brackets = brackets.saturating_sub(1);
            }
            _ => {}
        }
        match kind {
            TokenKind::EndOfFile => break,
            TokenKind::Newline => {
                line += 1;
                current = 0;
                start_line = line;
            }
            TokenKind::NonLogicalNewline => line += 1,
            TokenKind::Indent => indents += 1,
            TokenKind::Comment | TokenKind::Dedent => {}
            _ => {
                current += 1;
                if current > longest {
                    longest = current;
                    longest_line = start_line;
                }
            }
        }
    }
    Ok((longest + indents, longest_line))
}

/// Runs `work` (a parse and everything done on its tree) on a thread with
/// enough stack for `source`.
pub(crate) fn with_stack_for<T: Send>(
    path: &Path,
    source: &str,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let (bound, line) = nesting_bound(path, source)?;
    let stack = bound
        .checked_mul(STACK_PER_LEVEL)
        .and_then(|s| s.checked_add(BASE_STACK))
        .filter(|s| *s <= MAX_STACK)
        .ok_or_else(|| AnalyzerError::TooDeep {
            path: path.to_path_buf(),
            line,
            message: format!("a statement of {bound} tokens is too large to analyze safely"),
        })?;
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("casher-parse".to_owned())
            .stack_size(stack)
            .spawn_scoped(scope, work)
            .map_err(|source| AnalyzerError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        handle.join().unwrap_or_else(|_| {
            Err(AnalyzerError::TooDeep {
                path: path.to_path_buf(),
                line,
                message: "the analysis of this file failed unexpectedly".to_owned(),
            })
        })
    })
}

/// The first node nested deeper than [`MAX_NESTING`], if any (its start
/// offset). Recurses at most [`MAX_NESTING`] levels.
pub(crate) fn too_deep(body: &[Stmt]) -> Option<ruff_text_size::TextSize> {
    let mut depth = Depth {
        level: 0,
        found: None,
    };
    depth.visit_body(body);
    depth.found
}

struct Depth {
    level: usize,
    found: Option<ruff_text_size::TextSize>,
}

impl Depth {
    /// Enters a node: false (and the node is noted) when it is too deep.
    fn enter(&mut self, node: &impl ruff_text_size::Ranged) -> bool {
        if self.found.is_some() {
            return false;
        }
        if self.level >= MAX_NESTING {
            self.found = Some(node.range().start());
            return false;
        }
        self.level += 1;
        true
    }
}

impl<'a> Visitor<'a> for Depth {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        if self.enter(stmt) {
            visitor::walk_stmt(self, stmt);
            self.level -= 1;
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        if self.enter(expr) {
            visitor::walk_expr(self, expr);
            self.level -= 1;
        }
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        if self.enter(pattern) {
            visitor::walk_pattern(self, pattern);
            self.level -= 1;
        }
    }
}

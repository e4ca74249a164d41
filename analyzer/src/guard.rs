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

/// An upper bound of how deep the parser may recurse on `source`, and the
/// (1-based) line where that depth is reached; brackets nested deeper than
/// CPython allows are an error.
///
/// Nesting never spans statements except through indentation, and never
/// spans a comma at one bracket level (the elements of a list, a call's
/// arguments and a tuple's items are siblings) except in a lambda's
/// parameters (`lambda a, b: lambda ...` nests). So the bound is the most
/// tokens seen along the current segment of every open bracket level, plus
/// the indents: small for a long data table, large only for a long chain.
fn nesting_bound(path: &Path, source: &str) -> Result<(usize, usize)> {
    /// One bracket level: tokens since its last separating comma, and the
    /// lambdas whose parameter list (up to their `:`) is open.
    #[derive(Default)]
    struct Level {
        tokens: usize,
        lambdas: usize,
    }
    let mut lexer = lexer::lex(source, Mode::Module);
    let mut levels = vec![Level::default()];
    let (mut running, mut longest, mut longest_line) = (0usize, 0usize, 1usize);
    let (mut line, mut start_line, mut indents) = (1usize, 1usize, 0usize);
    loop {
        let kind = lexer.next_token();
        let top = levels.len() - 1;
        match kind {
            TokenKind::EndOfFile => break,
            TokenKind::Newline | TokenKind::Semi => {
                if kind == TokenKind::Newline {
                    line += 1;
                }
                levels = vec![Level::default()];
                running = 0;
                start_line = line;
                continue;
            }
            TokenKind::NonLogicalNewline => {
                line += 1;
                continue;
            }
            TokenKind::Indent => {
                indents += 1;
                continue;
            }
            TokenKind::Comment | TokenKind::Dedent => continue,
            TokenKind::Comma if levels[top].lambdas == 0 => {
                running -= levels[top].tokens;
                levels[top].tokens = 0;
                continue;
            }
            TokenKind::Lambda => levels[top].lambdas += 1,
            TokenKind::Colon if levels[top].lambdas > 0 => levels[top].lambdas -= 1,
            TokenKind::Rpar | TokenKind::Rsqb | TokenKind::Rbrace if top > 0 => {
                if let Some(closed) = levels.pop() {
                    running -= closed.tokens;
                }
            }
            _ => {}
        }
        let top = levels.len() - 1;
        levels[top].tokens += 1;
        running += 1;
        if matches!(kind, TokenKind::Lpar | TokenKind::Lsqb | TokenKind::Lbrace) {
            levels.push(Level::default());
            if levels.len() - 1 > MAX_BRACKETS {
                return Err(AnalyzerError::TooDeep {
                    path: path.to_path_buf(),
                    line: deep_bracket_line(source).unwrap_or(start_line),
                    message: format!("more than {MAX_BRACKETS} nested brackets (CPython's limit)"),
                });
            }
        }
        if running > longest {
            longest = running;
            longest_line = start_line;
        }
    }
    Ok((longest + indents, longest_line))
}

/// The line of the first bracket nested deeper than [`MAX_BRACKETS`], by a
/// plain scan that skips comments and string literals (the lexer does not
/// expose positions): only for the error message.
fn deep_bracket_line(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let (mut i, mut line, mut depth) = (0usize, 1usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => line += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            quote @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(&[quote; 3]);
                let close: &[u8] = if triple {
                    &bytes[i..i + 3]
                } else {
                    &bytes[i..i + 1]
                };
                i += close.len();
                while i < bytes.len() && !bytes[i..].starts_with(close) {
                    if bytes[i] == b'\\' {
                        i += 1;
                    } else if bytes[i] == b'\n' {
                        line += 1;
                        if !triple {
                            break;
                        }
                    }
                    i += 1;
                }
                i += close.len();
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_BRACKETS {
                    return Some(line);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
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
            message: format!("an expression of {bound} tokens is too large to analyze safely"),
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

#[cfg(test)]
mod tests {
    use super::nesting_bound;
    use std::path::Path;

    fn bound(source: &str) -> usize {
        nesting_bound(Path::new("t.py"), source).unwrap().0
    }

    #[test]
    fn flat_data_is_shallow_and_chains_are_deep() {
        let table = format!("T = [{}]\n", vec!["(1, -2, 'x')"; 20_000].join(", "));
        assert!(bound(&table) < 20, "{}", bound(&table));
        assert!(bound(&format!("x = {}\n", vec!["1"; 5_000].join("+"))) >= 9_999);
        let lambdas = "lambda a, b=lambda c: 0, d: ".repeat(1_000);
        assert!(bound(&format!("x = {lambdas}1\n")) >= 1_000 * 6);
        assert!(bound(&format!("x = {}1\n", "-".repeat(3_000))) >= 3_000);
        assert!(bound("x = [a for a in b]\ny = 1; z = 2\n") < 12);
    }

    #[test]
    fn more_brackets_than_cpython_allows_is_an_error() {
        assert!(nesting_bound(
            Path::new("t.py"),
            &format!("x = {}1{}\n", "[".repeat(200), "]".repeat(200))
        )
        .is_ok());
        let err = nesting_bound(
            Path::new("t.py"),
            &format!("\n\nx = {}1{}\n", "(".repeat(201), ")".repeat(201)),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.py:3: more than 200 nested brackets"),
            "{err}"
        );
    }
}

//! Collects every import a module can perform, wherever it appears: at the
//! top level, inside functions, classes, `try`, `if` and `match` blocks, and
//! literal dynamic imports (`importlib.import_module`, `__import__`).
//!
//! Collection is kept apart from resolution (see `resolve`): this module only
//! says what was asked for, never where it is found.

use ruff_python_ast::visitor::{walk_expr, walk_stmt, Visitor};
use ruff_python_ast::{Expr, Stmt};
use serde::{Deserialize, Serialize};

/// One import request as written in the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// Dotted module name without leading dots (may be empty for `from . import x`).
    pub module: String,
    /// Number of leading dots of a relative import; 0 for absolute.
    pub level: u32,
    /// Names of `from module import a, b`; `"*"` for a star import; for
    /// `__import__(m, fromlist=[...])`, the literal fromlist.
    pub names: Vec<String>,
    /// For `importlib.import_module(".x", package="pkg")`: the anchor package
    /// the leading dots are relative to, instead of the importing module.
    pub anchor: Option<String>,
    /// 1-based line of the import in the importing file.
    pub line: u32,
}

/// What the visitor found besides plain imports.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ModuleFacts {
    pub imports: Vec<ImportRecord>,
    /// Literal `__all__`, when the module defines one.
    pub all: Option<Vec<String>>,
    /// Some change of `__all__` is not a literal list of strings
    /// (`__all__ += other.__all__`): `all` is then incomplete.
    #[serde(default)]
    pub all_dynamic: bool,
    /// Dynamic imports whose target is not a literal: the analysis cannot see
    /// them (line numbers, for the warning).
    pub opaque_dynamic_imports: Vec<u32>,
    /// Names bound at the top level by `def` and `class`.
    pub top_level_defs: Vec<String>,
}

pub(crate) struct ImportVisitor<'s> {
    line_starts: &'s [usize],
    facts: ModuleFacts,
}

impl<'s> ImportVisitor<'s> {
    pub(crate) fn collect(body: &[Stmt], line_starts: &'s [usize]) -> ModuleFacts {
        let mut visitor = ImportVisitor {
            line_starts,
            facts: ModuleFacts::default(),
        };
        for stmt in body {
            match stmt {
                Stmt::FunctionDef(f) => visitor.facts.top_level_defs.push(f.name.id.to_string()),
                Stmt::ClassDef(c) => visitor.facts.top_level_defs.push(c.name.id.to_string()),
                _ => {}
            }
            visitor.collect_all(stmt);
        }
        visitor.visit_body(body);
        visitor.facts
    }

    fn line(&self, offset: ruff_text_size::TextSize) -> u32 {
        let offset = offset.to_usize();
        let index = self.line_starts.partition_point(|&start| start <= offset);
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// `__all__ = [...]`, `__all__ += [...]`, `__all__.extend([...])`, `__all__.append("x")`.
    fn collect_all(&mut self, stmt: &Stmt) {
        let (target, value, replace) = match stmt {
            Stmt::Assign(a) if a.targets.len() == 1 => (&a.targets[0], &*a.value, true),
            Stmt::AnnAssign(a) => match a.value.as_deref() {
                Some(v) => (&*a.target, v, true),
                None => return,
            },
            Stmt::AugAssign(a) => (&*a.target, &*a.value, false),
            Stmt::Expr(e) => {
                let Expr::Call(call) = &*e.value else { return };
                let Expr::Attribute(attr) = &*call.func else {
                    return;
                };
                if !is_name(&attr.value, "__all__") {
                    return;
                }
                let names = match (attr.attr.id.as_str(), call.arguments.args.first()) {
                    ("extend", Some(arg)) => string_list(arg),
                    ("append", Some(Expr::StringLiteral(s))) => {
                        Some(vec![s.value.to_str().to_owned()])
                    }
                    _ => None,
                };
                match names {
                    Some(names) => self.facts.all.get_or_insert_with(Vec::new).extend(names),
                    None => self.facts.all_dynamic = true,
                }
                return;
            }
            _ => return,
        };
        if !is_name(target, "__all__") {
            return;
        }
        match string_list(value) {
            Some(names) if replace => self.facts.all = Some(names),
            Some(names) => self.facts.all.get_or_insert_with(Vec::new).extend(names),
            None => self.facts.all_dynamic = true,
        }
    }

    fn dynamic_import(&mut self, call: &ruff_python_ast::ExprCall) {
        let line = self.line(call.range_start);
        let func = &*call.func;
        let is_import_module = match func {
            Expr::Attribute(a) => {
                a.attr.id.as_str() == "import_module" && is_name(&a.value, "importlib")
            }
            Expr::Name(n) => n.id.as_str() == "import_module",
            _ => false,
        };
        let is_dunder_import = is_name(func, "__import__");
        if !is_import_module && !is_dunder_import {
            return;
        }
        let keyword = |name: &str| {
            call.arguments
                .keywords
                .iter()
                .find(|k| k.arg.as_ref().is_some_and(|a| a.id.as_str() == name))
                .map(|k| &k.value)
        };
        let target = call.arguments.args.first().or_else(|| keyword("name"));
        let Some(Expr::StringLiteral(target)) = target else {
            self.facts.opaque_dynamic_imports.push(line);
            return;
        };
        let text = target.value.to_str();
        let level = text.chars().take_while(|c| *c == '.').count();
        let module = text[level..].to_owned();
        if is_import_module {
            let anchor = match call.arguments.args.get(1).or_else(|| keyword("package")) {
                Some(Expr::StringLiteral(p)) => Some(p.value.to_str().to_owned()),
                Some(_) if level > 0 => {
                    self.facts.opaque_dynamic_imports.push(line);
                    return;
                }
                _ => None,
            };
            self.facts.imports.push(ImportRecord {
                module,
                level: level as u32,
                names: Vec::new(),
                anchor,
                line,
            });
        } else {
            let fromlist = call
                .arguments
                .args
                .get(3)
                .or_else(|| keyword("fromlist"))
                .and_then(string_list)
                .unwrap_or_default();
            let level = match call.arguments.args.get(4).or_else(|| keyword("level")) {
                Some(Expr::NumberLiteral(ruff_python_ast::ExprNumberLiteral {
                    value: ruff_python_ast::Number::Int(i),
                    ..
                })) => i.as_i32().and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                _ => 0,
            };
            self.facts.imports.push(ImportRecord {
                module,
                level,
                names: fromlist,
                anchor: None,
                line,
            });
        }
    }
}

impl<'a> Visitor<'a> for ImportVisitor<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Import(import) => {
                let line = self.line(import.range.start());
                for alias in &import.names {
                    self.facts.imports.push(ImportRecord {
                        module: alias.name.id.to_string(),
                        level: 0,
                        names: Vec::new(),
                        anchor: None,
                        line,
                    });
                }
            }
            Stmt::ImportFrom(import) => {
                let line = self.line(import.range.start());
                self.facts.imports.push(ImportRecord {
                    module: import
                        .module
                        .as_ref()
                        .map(|m| m.id.to_string())
                        .unwrap_or_default(),
                    level: import.level,
                    names: import.names.iter().map(|a| a.name.id.to_string()).collect(),
                    anchor: None,
                    line,
                });
            }
            _ => walk_stmt(self, stmt),
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        if let Expr::Call(call) = expr {
            self.dynamic_import(call);
        }
        walk_expr(self, expr);
    }
}

fn is_name(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::Name(n) if n.id.as_str() == name)
}

fn string_list(expr: &Expr) -> Option<Vec<String>> {
    let elts = match expr {
        Expr::List(l) => &l.elts,
        Expr::Tuple(t) => &t.elts,
        _ => return None,
    };
    elts.iter()
        .map(|e| match e {
            Expr::StringLiteral(s) => Some(s.value.to_str().to_owned()),
            _ => None,
        })
        .collect()
}

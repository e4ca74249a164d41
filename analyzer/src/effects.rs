//! Definitions that act when their module is imported.
//!
//! A `def` or `class` normally only binds a name: a function that never
//! names it cannot depend on it. Some run code of their own at import, and
//! what that code does (register a handler in a dict, add an implementation
//! to a `singledispatch` function, fill an `__init_subclass__` registry,
//! create a class a metaclass records) is visible to functions that never
//! name the definition. Those count as effects of their module, like a bare
//! call: reached whenever the module is.
//!
//! This module records the syntactic facts; whether a name is builtin,
//! stdlib or project code is decided by the reachability walk, which knows
//! where imports resolve.

use ruff_python_ast::{Expr, Stmt};
use serde::{Deserialize, Serialize};

/// What a top-level statement runs at import, beyond binding names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectFacts {
    /// The root names of the decorators, class bases and class keywords
    /// (`metaclass=`) evaluated when the statement runs: `register` for
    /// `@register("x")`, `fmt` for `@fmt.register`. `None` for an
    /// expression with no root name (`@(lambda f: f)`).
    pub runs: Vec<Option<String>>,
    /// A class that defines `__init_subclass__` (its subclasses run it).
    pub init_subclass: bool,
    /// Names whose methods an assignment calls (`H = _REGISTRY.setdefault(...)`):
    /// candidates for a registry mutated at import.
    pub method_calls_on: Vec<String>,
}

impl EffectFacts {
    pub fn of(stmt: &Stmt) -> Self {
        let mut facts = EffectFacts::default();
        match stmt {
            Stmt::FunctionDef(f) => {
                facts
                    .runs
                    .extend(f.decorator_list.iter().map(|d| root_name(&d.expression)));
            }
            Stmt::ClassDef(c) => facts.class(c),
            Stmt::Assign(a) => method_calls(&a.value, &mut facts.method_calls_on),
            Stmt::AnnAssign(a) => {
                if let Some(value) = &a.value {
                    method_calls(value, &mut facts.method_calls_on);
                }
            }
            Stmt::AugAssign(a) => method_calls(&a.value, &mut facts.method_calls_on),
            _ => {}
        }
        facts.runs.sort();
        facts.runs.dedup();
        facts.method_calls_on.sort();
        facts.method_calls_on.dedup();
        facts
    }

    fn class(&mut self, class: &ruff_python_ast::StmtClassDef) {
        self.runs.extend(
            class
                .decorator_list
                .iter()
                .map(|d| root_name(&d.expression)),
        );
        if let Some(arguments) = &class.arguments {
            self.runs.extend(arguments.args.iter().map(root_name));
            self.runs
                .extend(arguments.keywords.iter().map(|k| root_name(&k.value)));
        }
        // Names the class body binds are class attributes: `@x.setter`
        // refers to the property `x` of the body, not a module name.
        let own: Vec<&str> = class
            .body
            .iter()
            .filter_map(|s| match s {
                Stmt::FunctionDef(f) => Some(f.name.id.as_str()),
                Stmt::ClassDef(c) => Some(c.name.id.as_str()),
                Stmt::Assign(a) => a.targets.first().and_then(|t| match t {
                    Expr::Name(n) => Some(n.id.as_str()),
                    _ => None,
                }),
                Stmt::AnnAssign(a) => match &*a.target {
                    Expr::Name(n) => Some(n.id.as_str()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        for s in &class.body {
            match s {
                Stmt::FunctionDef(f) => {
                    if f.name.id.as_str() == "__init_subclass__" {
                        self.init_subclass = true;
                    }
                    self.runs.extend(
                        f.decorator_list
                            .iter()
                            .map(|d| root_name(&d.expression))
                            .filter(|n| !n.as_deref().is_some_and(|n| own.contains(&n))),
                    );
                }
                Stmt::ClassDef(c) => self.class(c),
                _ => {}
            }
        }
    }

    /// True when the statement may act at import beyond binding names,
    /// given a judgement of each root name (`true`: it may run project
    /// or third-party code).
    pub fn any(&self, runs_foreign: impl Fn(Option<&str>) -> bool) -> bool {
        self.init_subclass || self.runs.iter().any(|r| runs_foreign(r.as_deref()))
    }
}

/// `a` for `a`, `a.b.c`, `a.b(...)`, `a[...]`; `None` otherwise.
fn root_name(expr: &Expr) -> Option<String> {
    let mut current = expr;
    loop {
        current = match current {
            Expr::Name(n) => return Some(n.id.to_string()),
            Expr::Attribute(a) => &a.value,
            Expr::Call(c) => &c.func,
            Expr::Subscript(s) => &s.value,
            _ => return None,
        };
    }
}

/// Root names of `X.method(...)` calls in an expression (not inside
/// lambdas, which do not run at import).
fn method_calls(expr: &Expr, out: &mut Vec<String>) {
    use ruff_python_ast::visitor::{walk_expr, Visitor};
    struct Calls<'o>(&'o mut Vec<String>);
    impl<'a> Visitor<'a> for Calls<'_> {
        fn visit_expr(&mut self, expr: &'a Expr) {
            match expr {
                Expr::Lambda(_) => return,
                Expr::Call(call) => {
                    if let Expr::Attribute(a) = &*call.func {
                        if let Some(root) = root_name(&a.value) {
                            self.0.push(root);
                        }
                    }
                }
                _ => {}
            }
            walk_expr(self, expr);
        }
    }
    Calls(out).visit_expr(expr);
}

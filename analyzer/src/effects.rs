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
//! where imports resolve (`reach/effects.rs`).
//!
//! A class statement counts when its header runs foreign code: a decorator,
//! a metaclass or keyword, a base that is not builtin or stdlib and can act
//! on subclassing (it defines `__init_subclass__` or has a metaclass,
//! transitively, or it is third-party or unknown), or any project base once
//! reached code looks classes up through `__subclasses__()`. A class with
//! plain project bases otherwise only binds its name: counting every such
//! class as an effect would make every function of a module reach every
//! class of it.

use ruff_python_ast::{Expr, Stmt};
use serde::{Deserialize, Serialize};

/// What a top-level statement runs at import, beyond binding names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectFacts {
    /// The root names of the decorator calls and attributes evaluated when
    /// the statement runs (a class's own and its methods'): `register` for
    /// `@register("x")`, `fmt` for `@fmt.register`. `None` for an
    /// expression with no root name (`@(lambda f: f)`). Plain-name
    /// decorators (`@deco`) are left out (see [`acting`]).
    pub decorators: Vec<Option<String>>,
    /// A class's bases, as dotted chains (`["mod", "Base"]` for
    /// `mod.Base`, `["Generic"]` for `Generic[T]`); `None` for an
    /// expression that is not a name chain.
    pub bases: Vec<Option<Vec<String>>>,
    /// A class's keywords (`metaclass=M`, arguments for
    /// `__init_subclass__`), by root name of their value.
    pub keywords: Vec<Option<String>>,
    /// A class that defines `__init_subclass__` (its subclasses run it).
    pub init_subclass: bool,
    /// Objects an assignment mutates through a method call
    /// (`h = _REGISTRY.setdefault(...)`): a registry filled at import.
    pub mutates: Vec<String>,
}

/// Method names that change a container or registry in place.
const MUTATING: &[&str] = &[
    "append",
    "appendleft",
    "extend",
    "extendleft",
    "insert",
    "add",
    "update",
    "setdefault",
    "register",
    "remove",
    "discard",
    "pop",
    "popitem",
    "clear",
    "__setitem__",
];

impl EffectFacts {
    pub fn of(stmt: &Stmt) -> Self {
        let mut facts = EffectFacts::default();
        match stmt {
            Stmt::FunctionDef(f) => {
                facts.decorators.extend(
                    f.decorator_list
                        .iter()
                        .filter_map(|d| acting(&d.expression)),
                );
            }
            Stmt::ClassDef(c) => facts.class(c, true),
            Stmt::Assign(a) => mutations(&a.value, &mut facts.mutates),
            Stmt::AnnAssign(a) => {
                if let Some(value) = &a.value {
                    mutations(value, &mut facts.mutates);
                }
            }
            Stmt::AugAssign(a) => mutations(&a.value, &mut facts.mutates),
            _ => {}
        }
        for list in [&mut facts.decorators, &mut facts.keywords] {
            list.sort();
            list.dedup();
        }
        facts.bases.sort();
        facts.bases.dedup();
        facts.mutates.sort();
        facts.mutates.dedup();
        facts
    }

    fn class(&mut self, class: &ruff_python_ast::StmtClassDef, top: bool) {
        self.decorators.extend(
            class
                .decorator_list
                .iter()
                .filter_map(|d| acting(&d.expression)),
        );
        if let Some(arguments) = &class.arguments {
            if top {
                self.bases.extend(arguments.args.iter().map(chain));
                self.keywords
                    .extend(arguments.keywords.iter().map(|k| root_name(&k.value)));
            } else {
                // A nested class's header runs code like a decorator does.
                self.decorators.extend(arguments.args.iter().map(root_name));
                self.decorators
                    .extend(arguments.keywords.iter().map(|k| root_name(&k.value)));
            }
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
                    if top && f.name.id.as_str() == "__init_subclass__" {
                        self.init_subclass = true;
                    }
                    self.decorators.extend(
                        f.decorator_list
                            .iter()
                            .filter_map(|d| acting(&d.expression))
                            .filter(|n| !n.as_deref().is_some_and(|n| own.contains(&n))),
                    );
                }
                Stmt::ClassDef(c) => self.class(c, false),
                _ => {}
            }
        }
    }
}

/// The root name of a decorator that may register what it decorates: a
/// call (`@register("x")`, `@app.route("/")`) or an attribute
/// (`@fmt.register`); `Some(None)` for another expression. A plain name
/// (`@wraps_it`) only wraps: `None`, it does not count (a plain decorator
/// that registers is seen by the run-time check).
fn acting(expr: &Expr) -> Option<Option<String>> {
    match expr {
        Expr::Name(_) => None,
        Expr::Call(_) | Expr::Attribute(_) => Some(root_name(expr)),
        _ => Some(None),
    }
}

/// `[a, b, c]` for `a.b.c` (and `a.b.c[...]`); `None` otherwise.
fn chain(expr: &Expr) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = match expr {
        Expr::Subscript(s) => &*s.value,
        other => other,
    };
    loop {
        match current {
            Expr::Name(n) => {
                parts.push(n.id.to_string());
                parts.reverse();
                return Some(parts);
            }
            Expr::Attribute(a) => {
                parts.push(a.attr.id.to_string());
                current = &a.value;
            }
            _ => return None,
        }
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

/// Root names of `X.method(...)` calls with a mutating method name in an
/// expression (not inside lambdas or comprehensions, whose names are their
/// own).
fn mutations(expr: &Expr, out: &mut Vec<String>) {
    use ruff_python_ast::visitor::{walk_expr, Visitor};
    struct Calls<'o>(&'o mut Vec<String>);
    impl<'a> Visitor<'a> for Calls<'_> {
        fn visit_expr(&mut self, expr: &'a Expr) {
            match expr {
                Expr::Lambda(_)
                | Expr::ListComp(_)
                | Expr::SetComp(_)
                | Expr::DictComp(_)
                | Expr::Generator(_) => return,
                Expr::Call(call) => {
                    if let Expr::Attribute(a) = &*call.func {
                        if MUTATING.contains(&a.attr.id.as_str()) {
                            if let Some(root) = root_name(&a.value) {
                                self.0.push(root);
                            }
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

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
//! A decorator counts unless it is builtin or stdlib, or a project function
//! whose code at decoration provably touches only the decorated object and
//! objects it creates (`reach/decorators.rs`, from the summary in
//! `behaviour.rs`): `@rich_repr()` sets attributes of the class it
//! decorates and counts for nothing; `@register("x")` fills a dict and
//! counts. A plain-name decorator that is not a project function only
//! wraps (a third-party one that registers is seen by the run-time check).
//!
//! A class statement counts when its header runs foreign code: a decorator
//! that counts, a metaclass or keyword, a base that is not builtin or stdlib and can act
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
    /// The decorators applied when the statement runs (a class's own and
    /// its methods'), and the code a nested class header runs.
    pub decorators: Vec<Decoration>,
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
    /// A function's behaviour when it runs: decides whether applying it as
    /// a decorator acts beyond the decorated object.
    pub function: Option<Box<crate::behaviour::FnFacts>>,
}

/// One decorator (or nested class header) evaluated at import.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Decoration {
    /// The callee as a name chain (`["fmt", "register"]` for
    /// `@fmt.register`); `None` for another expression.
    pub chain: Option<Vec<String>>,
    /// `@chain(...)`: its arguments' shapes; `None` for `@chain`.
    pub args: Option<Arguments>,
    pub on: Decorated,
    /// The callees of the decorators applied before this one (below it):
    /// what they return is what this one gets.
    pub below: Vec<Option<Vec<String>>>,
}

/// A decorator call's arguments, by shape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Arguments {
    pub args: Vec<crate::behaviour::Value>,
    pub keywords: Vec<(String, crate::behaviour::Value)>,
    pub spread: bool,
}

/// What a decoration is applied to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Decorated {
    /// A top-level class, with the names its own body binds: writes
    /// through those attributes land in the class's own objects.
    Class(Vec<String>),
    /// A function or method.
    Function,
    /// Not a decorator: a nested class's base or keyword, which runs code
    /// like a decorator does.
    Header,
}

/// Method names that change a container or registry in place.
pub(crate) const MUTATING: &[&str] = &[
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
                facts
                    .decorators
                    .extend(decorations(&f.decorator_list, &Decorated::Function));
                facts.function = Some(Box::new(crate::behaviour::FnFacts::of(f)));
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
        facts.decorators.sort();
        facts.decorators.dedup();
        facts.keywords.sort();
        facts.keywords.dedup();
        facts.bases.sort();
        facts.bases.dedup();
        facts.mutates.sort();
        facts.mutates.dedup();
        facts
    }

    fn class(&mut self, class: &ruff_python_ast::StmtClassDef, top: bool) {
        // Names the class body binds are class attributes: `@x.setter`
        // refers to the property `x` of the body, not a module name.
        let own: Vec<String> = class
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
            .map(str::to_owned)
            .collect();
        let on = if top {
            Decorated::Class(own.clone())
        } else {
            Decorated::Header
        };
        self.decorators
            .extend(decorations(&class.decorator_list, &on));
        if let Some(arguments) = &class.arguments {
            if top {
                self.bases.extend(arguments.args.iter().map(chain));
                self.keywords
                    .extend(arguments.keywords.iter().map(|k| root_name(&k.value)));
            } else {
                // A nested class's header runs code like a decorator does.
                let header = |e: &Expr| Decoration {
                    chain: root_name(e).map(|n| vec![n]),
                    args: None,
                    on: Decorated::Header,
                    below: Vec::new(),
                };
                self.decorators.extend(arguments.args.iter().map(header));
                self.decorators
                    .extend(arguments.keywords.iter().map(|k| header(&k.value)));
            }
        }
        for s in &class.body {
            match s {
                Stmt::FunctionDef(f) => {
                    if top && f.name.id.as_str() == "__init_subclass__" {
                        self.init_subclass = true;
                    }
                    self.decorators.extend(
                        decorations(&f.decorator_list, &Decorated::Function)
                            .into_iter()
                            .filter(|d| {
                                !d.chain
                                    .as_ref()
                                    .and_then(|c| c.first())
                                    .is_some_and(|n| own.contains(n))
                            }),
                    );
                }
                Stmt::ClassDef(c) => self.class(c, false),
                _ => {}
            }
        }
    }
}

/// A decorator list, each with the callees applied before it.
fn decorations(list: &[ruff_python_ast::Decorator], on: &Decorated) -> Vec<Decoration> {
    list.iter()
        .enumerate()
        .map(|(i, d)| {
            let below = list[i + 1..]
                .iter()
                .map(|b| {
                    crate::behaviour::chain_of(match &b.expression {
                        Expr::Call(c) => &c.func,
                        other => other,
                    })
                })
                .collect();
            decoration(&d.expression, on.clone(), below)
        })
        .collect()
}

/// A decorator expression: `@a.b`, `@a.b(...)`, or something else.
fn decoration(expr: &Expr, on: Decorated, below: Vec<Option<Vec<String>>>) -> Decoration {
    let (callee, call) = match expr {
        Expr::Call(c) => (&*c.func, Some(c)),
        other => (other, None),
    };
    Decoration {
        chain: crate::behaviour::chain_of(callee),
        args: call.map(|c| {
            let (args, keywords, spread) = crate::behaviour::arguments(c, crate::behaviour::shape);
            Arguments {
                args,
                keywords,
                spread,
            }
        }),
        on,
        below,
    }
}

/// `[a, b, c]` for `a.b.c` (and `a.b.c[...]`); `None` otherwise.
fn chain(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Subscript(s) => crate::behaviour::chain_of(&s.value),
        other => crate::behaviour::chain_of(other),
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

//! What a function does when it runs, summarized from its source so the
//! reachability walk can decide whether applying it as a decorator acts on
//! anything beyond the decorated object (see `reach/decorators.rs`).
//!
//! A decorator call at import runs project code. If that code writes
//! module-level state (a registry, a counter, another module's attribute),
//! a function that never names the decorated definition can still see the
//! effect, so the definition must count as an effect of its module. If it
//! only builds wrappers and sets attributes on the object it decorates
//! (`functools.wraps`, `rich.repr.auto`), counting it would make every
//! function of the module depend on every decorated definition: a false
//! miss for each edit. The summary records, per function, the facts that
//! decide this: the writes (rooted at which name, how deep), the calls
//! (callee chain, argument shapes), what it returns, and its nested
//! functions, which run only when something calls them.
//!
//! The summary is deliberately coarse where it cannot be sure: anything it
//! does not model (`global`, `exec`, a class statement, a write through a
//! computed expression) is recorded as `unknown`, which makes a decorator
//! that runs it count as acting. It never decides by itself: names are
//! resolved by the walk, which knows builtins, the stdlib and the project.

use std::collections::HashMap;

use ruff_python_ast::visitor::{walk_expr, walk_stmt, Visitor};
use ruff_python_ast::{Expr, ExprContext, Parameters, Stmt, StmtFunctionDef};
use ruff_text_size::{Ranged, TextRange};
use serde::{Deserialize, Serialize};

use crate::effects::MUTATING;

/// A function's behaviour when it runs (nested functions summarized apart).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FnFacts {
    pub params: Vec<ParamFacts>,
    /// Names the body binds, with what they hold (parameters excluded
    /// unless rebound).
    pub locals: Vec<(String, LocalKind)>,
    /// Why the body may act on shared state whatever its arguments, if it
    /// does something this summary does not model.
    pub unknown: Option<String>,
    pub writes: Vec<Write>,
    pub calls: Vec<CallFacts>,
    pub returns: Vec<Value>,
    pub nested: Vec<NestedFn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamFacts {
    pub name: String,
    /// Can be bound by position (not keyword-only, not variadic).
    pub positional: bool,
    /// `*args` / `**kwargs`: holds whatever the caller passes beyond.
    pub variadic: bool,
    /// The default's shape, if it has one.
    pub default: Option<Value>,
}

/// What a local name holds, joined over every binding of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalKind {
    /// A literal or a fresh container: nobody else can see it.
    Fresh,
    /// A nested function (index into [`FnFacts::nested`]).
    Nested(usize),
    /// Anything else: may alias shared state.
    Other,
}

/// The shape of an expression used as a value (an argument, a return).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Value {
    /// A literal, or a fresh container or string.
    Const,
    /// A bare name, resolved where the function runs.
    Name(String),
    /// The result of the call at this index of [`FnFacts::calls`].
    Call(usize),
    /// Anything else.
    Other,
}

/// A write through a name: `root.a = v`, `root.a.b = v`, `root[k] = v`,
/// `root.append(v)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    pub root: String,
    pub how: WriteKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteKind {
    /// An attribute of the object itself (`root.a = v`, `setattr(root, ...)`).
    Attribute,
    /// Through the object's attribute `a`, into another object
    /// (`root.a.b = v`, `root.a[k] = v`, `root.a.append(v)`).
    Deep(String),
    /// The object's items or contents (`root[k] = v`, `root.append(v)`).
    Item,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFacts {
    /// `[a, b, c]` for `a.b.c(...)`; `None` for a computed callee.
    pub callee: Option<Vec<String>>,
    pub args: Vec<Value>,
    pub keywords: Vec<(String, Value)>,
    /// `*xs` or `**kw` among the arguments: any parameter may get anything.
    pub spread: bool,
}

/// A function defined inside another: it runs only if something calls it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedFn {
    pub name: String,
    pub facts: FnFacts,
    /// Its decorators' values, applied when the enclosing function runs.
    pub decorators: Vec<Value>,
}

impl FnFacts {
    pub fn of(function: &StmtFunctionDef) -> Self {
        let mut s = Summarizer::default();
        s.facts.params = params(&function.parameters);
        for stmt in &function.body {
            s.visit_stmt(stmt);
        }
        s.finish()
    }

    /// What `name` holds as a local of this function, if it is one.
    pub fn local(&self, name: &str) -> Option<LocalKind> {
        self.locals
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, kind)| *kind)
    }
}

fn params(parameters: &Parameters) -> Vec<ParamFacts> {
    let with_default = |p: &ruff_python_ast::ParameterWithDefault, positional: bool| ParamFacts {
        name: p.parameter.name.id.to_string(),
        positional,
        variadic: false,
        // A mutable default is one object shared by every call.
        default: p.default.as_deref().map(|d| match d {
            Expr::List(_)
            | Expr::Dict(_)
            | Expr::Set(_)
            | Expr::ListComp(_)
            | Expr::DictComp(_)
            | Expr::SetComp(_) => Value::Other,
            other => shape(other),
        }),
    };
    let variadic = |p: &ruff_python_ast::Parameter| ParamFacts {
        name: p.name.id.to_string(),
        positional: false,
        variadic: true,
        default: None,
    };
    let mut out: Vec<ParamFacts> = parameters
        .posonlyargs
        .iter()
        .chain(&parameters.args)
        .map(|p| with_default(p, true))
        .collect();
    out.extend(parameters.vararg.as_deref().map(variadic));
    out.extend(parameters.kwonlyargs.iter().map(|p| with_default(p, false)));
    out.extend(parameters.kwarg.as_deref().map(variadic));
    out
}

/// The shape of an expression evaluated where no call index is known (a
/// default, a decorator's argument at module level).
pub fn shape(expr: &Expr) -> Value {
    value_of(expr, &HashMap::new())
}

fn value_of(expr: &Expr, calls: &HashMap<TextRange, usize>) -> Value {
    match expr {
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::BytesLiteral(_)
        | Expr::BooleanLiteral(_)
        | Expr::NoneLiteral(_)
        | Expr::EllipsisLiteral(_)
        | Expr::FString(_)
        | Expr::List(_)
        | Expr::Dict(_)
        | Expr::Set(_)
        | Expr::ListComp(_)
        | Expr::DictComp(_)
        | Expr::SetComp(_) => Value::Const,
        Expr::Tuple(t) if t.elts.iter().all(|e| value_of(e, calls) == Value::Const) => Value::Const,
        Expr::Name(n) => Value::Name(n.id.to_string()),
        Expr::Call(c) => calls
            .get(&c.range())
            .map_or(Value::Other, |&i| Value::Call(i)),
        _ => Value::Other,
    }
}

/// A call's positional and keyword arguments by shape, and whether it
/// spreads `*xs` or `**kw` (then any parameter may get anything).
pub fn arguments(
    call: &ruff_python_ast::ExprCall,
    value: impl Fn(&Expr) -> Value,
) -> (Vec<Value>, Vec<(String, Value)>, bool) {
    let args = call
        .arguments
        .args
        .iter()
        .filter(|a| !a.is_starred_expr())
        .map(&value)
        .collect();
    let keywords = call
        .arguments
        .keywords
        .iter()
        .filter_map(|k| k.arg.as_ref().map(|n| (n.id.to_string(), value(&k.value))))
        .collect();
    let spread = call.arguments.args.iter().any(Expr::is_starred_expr)
        || call.arguments.keywords.iter().any(|k| k.arg.is_none());
    (args, keywords, spread)
}

/// `[a, b, c]` for the name chain `a.b.c`; `None` otherwise.
pub fn chain_of(expr: &Expr) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = expr;
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

#[derive(Default)]
struct Summarizer {
    facts: FnFacts,
    locals: HashMap<String, LocalKind>,
    calls: HashMap<TextRange, usize>,
}

impl Summarizer {
    fn finish(mut self) -> FnFacts {
        let mut locals: Vec<_> = self.locals.into_iter().collect();
        locals.sort_by(|a, b| a.0.cmp(&b.0));
        self.facts.locals = locals;
        self.facts
    }

    fn unknown(&mut self, why: &str) {
        self.facts.unknown.get_or_insert_with(|| why.to_owned());
    }

    fn bind(&mut self, name: &str, kind: LocalKind) {
        let joined = match self.locals.get(name) {
            None => kind,
            Some(old) if *old == kind => kind,
            Some(_) => LocalKind::Other,
        };
        self.locals.insert(name.to_owned(), joined);
    }

    /// A store or delete through an attribute or subscript target.
    fn write_target(&mut self, target: &Expr) {
        let (base, item) = match target {
            Expr::Subscript(s) => (&*s.value, true),
            Expr::Attribute(a) => (&*a.value, false),
            _ => return,
        };
        self.write_through(base, item);
    }

    /// A write into `base` (its item when `item`, else its attribute).
    fn write_through(&mut self, base: &Expr, item: bool) {
        match chain_of(base) {
            Some(chain) if chain.len() == 1 => self.facts.writes.push(Write {
                root: chain[0].clone(),
                how: if item {
                    WriteKind::Item
                } else {
                    WriteKind::Attribute
                },
            }),
            Some(chain) => self.facts.writes.push(Write {
                root: chain[0].clone(),
                how: WriteKind::Deep(chain[1].clone()),
            }),
            None => self.unknown("writes through a computed object"),
        }
    }

    fn call(&mut self, call: &ruff_python_ast::ExprCall) {
        let callee = chain_of(&call.func);
        if let Some(chain) = &callee {
            match chain.as_slice() {
                [name] => match name.as_str() {
                    "exec" | "eval" | "compile" | "globals" | "locals" | "vars" | "__import__"
                    | "breakpoint" => self.unknown("uses exec, eval or a namespace"),
                    "setattr" | "delattr" => match call.arguments.args.first() {
                        Some(first) => self.write_through(first, false),
                        None => self.unknown("calls setattr without an object"),
                    },
                    _ => {}
                },
                [.., method] if MUTATING.contains(&method.as_str()) => {
                    if let Expr::Attribute(a) = &*call.func {
                        self.write_through(&a.value, true);
                    }
                }
                _ => {}
            }
        }
        let (args, keywords, spread) = arguments(call, |e| value_of(e, &self.calls));
        self.calls.insert(call.range(), self.facts.calls.len());
        self.facts.calls.push(CallFacts {
            callee,
            args,
            keywords,
            spread,
        });
    }

    fn nested(&mut self, function: &StmtFunctionDef) {
        // Decorators, defaults and annotations run when the `def` does.
        for d in &function.decorator_list {
            self.visit_expr(&d.expression);
        }
        ruff_python_ast::visitor::walk_parameters(self, &function.parameters);
        if let Some(returns) = &function.returns {
            self.visit_expr(returns);
        }
        let decorators = function
            .decorator_list
            .iter()
            .map(|d| value_of(&d.expression, &self.calls))
            .collect();
        let index = self.facts.nested.len();
        self.facts.nested.push(NestedFn {
            name: function.name.id.to_string(),
            facts: FnFacts::of(function),
            decorators,
        });
        self.bind(function.name.id.as_str(), LocalKind::Nested(index));
    }
}

impl<'a> Visitor<'a> for Summarizer {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => self.nested(f),
            Stmt::ClassDef(_) => self.unknown("defines a class"),
            Stmt::Global(_) | Stmt::Nonlocal(_) => self.unknown("declares global or nonlocal"),
            Stmt::Return(r) => {
                walk_stmt(self, stmt);
                let value = r
                    .value
                    .as_deref()
                    .map_or(Value::Const, |v| value_of(v, &self.calls));
                self.facts.returns.push(value);
            }
            Stmt::Assign(a) => {
                self.visit_expr(&a.value);
                let fresh = value_of(&a.value, &self.calls) == Value::Const;
                for target in &a.targets {
                    match target {
                        Expr::Name(n) if fresh => self.bind(n.id.as_str(), LocalKind::Fresh),
                        _ => self.visit_expr(target),
                    }
                }
            }
            Stmt::AnnAssign(a) => {
                if let Some(value) = &a.value {
                    self.visit_expr(value);
                    if let (Expr::Name(n), Value::Const) =
                        (&*a.target, value_of(value, &self.calls))
                    {
                        self.bind(n.id.as_str(), LocalKind::Fresh);
                        return;
                    }
                }
                self.visit_expr(&a.target);
            }
            Stmt::Import(_) | Stmt::ImportFrom(_) => {
                // Module-level bindings of the walk include imports inside
                // functions: the name resolves through them as a free name.
            }
            _ => walk_stmt(self, stmt),
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(n) if matches!(n.ctx, ExprContext::Store | ExprContext::Del) => {
                self.bind(n.id.as_str(), LocalKind::Other);
            }
            Expr::Attribute(a) if matches!(a.ctx, ExprContext::Store | ExprContext::Del) => {
                self.write_target(expr);
                self.visit_expr(&a.value);
            }
            Expr::Subscript(s) if matches!(s.ctx, ExprContext::Store | ExprContext::Del) => {
                self.write_target(expr);
                self.visit_expr(&s.value);
                self.visit_expr(&s.slice);
            }
            Expr::Lambda(l) => {
                // Its body may run wherever it is passed: taken as running.
                if let Some(parameters) = &l.parameters {
                    for p in parameters.iter() {
                        self.bind(p.name().id.as_str(), LocalKind::Other);
                    }
                }
                walk_expr(self, expr);
            }
            Expr::Call(call) => {
                walk_expr(self, expr);
                self.call(call);
            }
            _ => walk_expr(self, expr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(source: &str) -> FnFacts {
        let parsed = ruff_python_parser::parse_module(source).unwrap();
        match &parsed.syntax().body[0] {
            Stmt::FunctionDef(f) => FnFacts::of(f),
            _ => panic!("not a function"),
        }
    }

    #[test]
    fn records_writes_by_root_and_depth() {
        let f = facts("def d(cls):\n    cls.a = 1\n    cls.b.c = 2\n    R[k] = cls\n    R.append(cls)\n    setattr(cls, 'x', 1)\n");
        let writes: Vec<_> = f.writes.iter().map(|w| (w.root.as_str(), &w.how)).collect();
        assert_eq!(
            writes,
            vec![
                ("cls", &WriteKind::Attribute),
                ("cls", &WriteKind::Deep("b".into())),
                ("R", &WriteKind::Item),
                ("R", &WriteKind::Item),
                ("cls", &WriteKind::Attribute),
            ]
        );
    }

    #[test]
    fn nested_functions_are_summarized_apart() {
        let f = facts("def d(fit=True):\n    def inner(m):\n        REG.append(m)\n        return m\n    return inner\n");
        assert!(f.writes.is_empty());
        assert_eq!(f.returns, vec![Value::Name("inner".into())]);
        assert_eq!(f.local("inner"), Some(LocalKind::Nested(0)));
        assert_eq!(f.nested[0].facts.writes[0].root, "REG");
        assert_eq!(f.params[0].default, Some(Value::Const));
    }

    #[test]
    fn unmodelled_statements_are_unknown() {
        for source in [
            "def d(f):\n    global X\n    X = f\n",
            "def d(f):\n    exec('x')\n",
            "def d(f):\n    class C: pass\n",
            "def d(f):\n    f().x = 1\n",
        ] {
            assert!(facts(source).unknown.is_some(), "{source}");
        }
    }

    #[test]
    fn calls_record_argument_shapes() {
        let f = facts("def d(cls, angular=None):\n    return partial(do, angular=angular)\n");
        assert_eq!(f.calls[0].callee, Some(vec!["partial".to_owned()]));
        assert_eq!(f.calls[0].args, vec![Value::Name("do".into())]);
        assert_eq!(
            f.calls[0].keywords,
            vec![("angular".to_owned(), Value::Name("angular".into()))]
        );
        assert_eq!(f.returns, vec![Value::Call(0)]);
    }
}

//! A module's top-level statements as the unit of function-level
//! reachability: what each binds, what names it uses, and whether it is an
//! always-counting effect (anything but a definition, a plain assignment or
//! an import).
//!
//! Name uses are collected without modelling local scopes: a local that
//! shadows a global counts as a use of the global too. That can only add
//! dependencies (a false miss), never drop one.

use ruff_python_ast::visitor::{walk_expr, walk_stmt, Visitor};
use ruff_python_ast::{Expr, ExprContext, Stmt};
use serde::{Deserialize, Serialize};

use crate::identity::{DefinitionKind, DefinitionName};
use crate::normalize::Encoder;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StmtKind {
    /// `def` / `class`.
    Definition,
    /// Assignment to plain names.
    Assignment,
    /// `import` / `from ... import`.
    Import,
    /// Everything else: runs on import and always counts.
    Effect,
    /// Never runs, or does nothing, when the module is imported: `if
    /// __name__ == "__main__":` (casher loads scripts under another name
    /// too), `if TYPE_CHECKING:` (false at run time), string statements
    /// (docstrings) and `pass`. Never counts, binds nothing at run time.
    Inert,
}

fn is_type_checking_guard(stmt: &Stmt) -> bool {
    let Stmt::If(i) = stmt else { return false };
    if !i.elif_else_clauses.is_empty() {
        return false;
    }
    match &*i.test {
        Expr::Name(n) => n.id.as_str() == "TYPE_CHECKING",
        Expr::Attribute(a) => a.attr.id.as_str() == "TYPE_CHECKING",
        _ => false,
    }
}

fn is_main_guard(stmt: &Stmt) -> bool {
    let Stmt::If(i) = stmt else { return false };
    let Expr::Compare(c) = &*i.test else {
        return false;
    };
    if c.ops.len() != 1 || !matches!(c.ops[0], ruff_python_ast::CmpOp::Eq) {
        return false;
    }
    let is_name = |e: &Expr| matches!(e, Expr::Name(n) if n.id.as_str() == "__name__");
    let is_main = |e: &Expr| matches!(e, Expr::StringLiteral(s) if s.value.to_str() == "__main__");
    (is_name(&c.left) && is_main(&c.comparators[0]))
        || (is_main(&c.left) && is_name(&c.comparators[0]))
}

/// What an import statement binds a name to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bound {
    /// `import a.b` binds `a` to module `a`; `import a.b as c` binds `c` to `a.b`.
    Module { module: String, level: u32 },
    /// `from m import n as x` binds `x` to `n` in `m` (a submodule or an attribute).
    From {
        module: String,
        level: u32,
        name: String,
    },
    /// `from m import *`.
    Star { module: String, level: u32 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopStatement {
    /// Normalized hash of the statement alone.
    pub hash: [u8; 32],
    /// For messages only: never part of an identity.
    pub line: u32,
    pub end_line: u32,
    pub kind: StmtKind,
    /// Structural identity within the module (see [`crate::identity`]).
    pub id_kind: DefinitionKind,
    pub id_name: DefinitionName,
    pub ordinal: u32,
    /// What runs foreign code when the statement executes at import.
    pub effects: crate::effects::EffectFacts,
    /// Module-level names this statement binds (including `global` writes
    /// from inside functions).
    pub binds: Vec<String>,
    /// For imports: what each bound name refers to.
    pub imports: Vec<(String, Bound)>,
    /// Names loaded anywhere inside.
    pub uses: Vec<String>,
    /// Names assigned anywhere inside (parameters and locals of functions):
    /// a use of such a name that no module-level statement binds is taken
    /// for a local, not an unresolvable global.
    pub locals: Vec<String>,
    /// `name.attr.attr...` loads: candidates for `import m` + `m.attr`.
    pub attributes: Vec<Vec<String>>,
    /// Names loaded other than as the base of an attribute access.
    pub bare: Vec<String>,
    /// Why static analysis cannot see what this statement reaches
    /// (`globals()`, `eval`, a computed `getattr`), if so.
    pub opaque: Option<String>,
    /// It writes the module namespace by name (`globals().update(...)`,
    /// `globals()[k] = v`): it may bind any name.
    pub binds_dynamically: bool,
}

#[derive(Default)]
struct Collector {
    uses: Vec<String>,
    attributes: Vec<Vec<String>>,
    bare: Vec<String>,
    stores: Vec<String>,
    globals: Vec<String>,
    imports: Vec<(String, Bound)>,
    opaque: Option<String>,
    binds_dynamically: bool,
}

impl<'a> Visitor<'a> for Collector {
    fn visit_parameters(&mut self, parameters: &'a ruff_python_ast::Parameters) {
        // Parameters of every function and lambda inside are locals.
        self.stores
            .extend(parameters.iter().map(|p| p.name().id.to_string()));
        ruff_python_ast::visitor::walk_parameters(self, parameters);
    }

    fn visit_except_handler(&mut self, handler: &'a ruff_python_ast::ExceptHandler) {
        let ruff_python_ast::ExceptHandler::ExceptHandler(h) = handler;
        if let Some(name) = &h.name {
            self.stores.push(name.id.to_string());
        }
        ruff_python_ast::visitor::walk_except_handler(self, handler);
    }

    fn visit_pattern(&mut self, pattern: &'a ruff_python_ast::Pattern) {
        use ruff_python_ast::Pattern;
        match pattern {
            Pattern::MatchAs(p) => self
                .stores
                .extend(p.name.as_ref().map(|n| n.id.to_string())),
            Pattern::MatchStar(p) => self
                .stores
                .extend(p.name.as_ref().map(|n| n.id.to_string())),
            Pattern::MatchMapping(p) => self
                .stores
                .extend(p.rest.as_ref().map(|n| n.id.to_string())),
            _ => {}
        }
        ruff_python_ast::visitor::walk_pattern(self, pattern);
    }

    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        if let Stmt::Assign(a) = stmt {
            if let [Expr::Subscript(target)] = &a.targets[..] {
                if is_namespace(&target.value) {
                    // `globals()[name] = value`: a write, like `update`.
                    self.binds_dynamically = true;
                    self.visit_expr(&target.slice);
                    self.visit_expr(&a.value);
                    return;
                }
            }
        }
        match stmt {
            Stmt::Global(g) => self
                .globals
                .extend(g.names.iter().map(|n| n.id.to_string())),
            Stmt::FunctionDef(f) => self.stores.push(f.name.id.to_string()),
            Stmt::ClassDef(c) => self.stores.push(c.name.id.to_string()),
            Stmt::Import(i) => {
                self.imports.extend(import_bindings(stmt));
                for alias in &i.names {
                    let bound = alias.asname.as_ref().map_or_else(
                        || alias.name.id.split('.').next().unwrap_or("").to_owned(),
                        |a| a.id.to_string(),
                    );
                    self.stores.push(bound);
                }
            }
            Stmt::ImportFrom(i) => {
                self.imports.extend(import_bindings(stmt));
                for alias in &i.names {
                    self.stores
                        .push(alias.asname.as_ref().unwrap_or(&alias.name).id.to_string());
                }
            }
            _ => {}
        }
        walk_stmt(self, stmt);
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Name(n) => match n.ctx {
                ExprContext::Load => {
                    self.uses.push(n.id.to_string());
                    self.bare.push(n.id.to_string());
                }
                // `del toolz` unbinds a name; it does not pass a module
                // around as a value.
                ExprContext::Del => self.uses.push(n.id.to_string()),
                ExprContext::Store => self.stores.push(n.id.to_string()),
                ExprContext::Invalid => {}
            },
            Expr::Attribute(_) => {
                // A dotted chain on a name (`pkg.helpers.clean`): kept whole.
                let mut parts = Vec::new();
                let mut current = expr;
                while let Expr::Attribute(a) = current {
                    parts.push(a.attr.id.to_string());
                    current = &a.value;
                }
                if let Expr::Name(base) = current {
                    parts.push(base.id.to_string());
                    parts.reverse();
                    self.uses.push(base.id.to_string());
                    self.attributes.push(parts);
                    return;
                }
            }
            Expr::Call(call) if namespace_write(call) => {
                // `globals().update({...})`: binds names nobody can see,
                // reads nothing of the module.
                self.binds_dynamically = true;
                for arg in &*call.arguments.args {
                    self.visit_expr(arg);
                }
                for keyword in &*call.arguments.keywords {
                    self.visit_expr(&keyword.value);
                }
                return;
            }
            Expr::Call(call) => {
                // An import by a computed name is not opaque here: its
                // target is unknown, so counting the importing module
                // whole would not cover it. The walk warns about it, and
                // the traced child reports the modules it really imported
                // (they become code inputs).
                if let Expr::Name(f) = &*call.func {
                    let name = f.id.as_str();
                    let no_args =
                        call.arguments.args.is_empty() && call.arguments.keywords.is_empty();
                    // `getattr(obj, name)` and `vars(obj)` read `obj`'s
                    // attributes, not this module's names: a project
                    // module passed to them is a bare use (counted whole),
                    // a class is reached whole when named. So a computed
                    // name there makes nothing of this module opaque.
                    self.opaque = self.opaque.take().or(match name {
                        "vars" if !no_args => None,
                        "globals" | "vars" | "locals" | "eval" | "exec" => {
                            self.binds_dynamically = true;
                            Some(format!("uses {name}()"))
                        }
                        _ => None,
                    });
                }
            }
            Expr::Subscript(s) => {
                if let Expr::Attribute(a) = &*s.value {
                    if a.attr.id.as_str() == "modules"
                        && matches!(&*a.value, Expr::Name(n) if n.id.as_str() == "sys")
                    {
                        self.opaque = self
                            .opaque
                            .take()
                            .or(Some("uses sys.modules[...]".to_owned()));
                    }
                }
            }
            _ => {}
        }
        walk_expr(self, expr);
    }
}

/// `globals()` / `locals()` (at module level the same namespace).
fn is_namespace(expr: &Expr) -> bool {
    matches!(expr, Expr::Call(c) if c.arguments.args.is_empty()
        && matches!(&*c.func, Expr::Name(n) if matches!(n.id.as_str(), "globals" | "locals")))
}

/// `globals().update(...)`, `globals().setdefault(...)`,
/// `globals().__setitem__(...)`: a write into the module namespace.
fn namespace_write(call: &ruff_python_ast::ExprCall) -> bool {
    matches!(&*call.func, Expr::Attribute(a)
        if is_namespace(&a.value)
            && matches!(a.attr.id.as_str(), "update" | "setdefault" | "__setitem__"))
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn import_bindings(stmt: &Stmt) -> Vec<(String, Bound)> {
    match stmt {
        Stmt::Import(i) => i
            .names
            .iter()
            .map(|alias| match &alias.asname {
                Some(asname) => (
                    asname.id.to_string(),
                    Bound::Module {
                        module: alias.name.id.to_string(),
                        level: 0,
                    },
                ),
                None => {
                    let top = alias.name.id.split('.').next().unwrap_or("").to_owned();
                    (
                        top.clone(),
                        Bound::Module {
                            module: top,
                            level: 0,
                        },
                    )
                }
            })
            .collect(),
        Stmt::ImportFrom(i) => {
            let module = i
                .module
                .as_ref()
                .map(|m| m.id.to_string())
                .unwrap_or_default();
            i.names
                .iter()
                .map(|alias| {
                    if alias.name.id.as_str() == "*" {
                        (
                            "*".to_owned(),
                            Bound::Star {
                                module: module.clone(),
                                level: i.level,
                            },
                        )
                    } else {
                        (
                            alias.asname.as_ref().unwrap_or(&alias.name).id.to_string(),
                            Bound::From {
                                module: module.clone(),
                                level: i.level,
                                name: alias.name.id.to_string(),
                            },
                        )
                    }
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

fn plain_targets(targets: &[&Expr]) -> bool {
    targets.iter().all(|t| match t {
        Expr::Name(_) => true,
        Expr::Tuple(t) => plain_targets(&t.elts.iter().collect::<Vec<_>>()),
        Expr::List(l) => plain_targets(&l.elts.iter().collect::<Vec<_>>()),
        Expr::Starred(s) => plain_targets(&[&*s.value]),
        _ => false,
    })
}

fn kind_of(stmt: &Stmt) -> StmtKind {
    let no_else = !matches!(stmt, Stmt::If(i) if !i.elif_else_clauses.is_empty());
    if (is_main_guard(stmt) && no_else) || is_type_checking_guard(stmt) {
        return StmtKind::Inert;
    }
    if matches!(stmt, Stmt::Pass(_))
        || matches!(stmt, Stmt::Expr(e) if e.value.is_string_literal_expr())
    {
        return StmtKind::Inert;
    }
    match stmt {
        Stmt::FunctionDef(_) | Stmt::ClassDef(_) => StmtKind::Definition,
        Stmt::Import(_) => StmtKind::Import,
        Stmt::ImportFrom(i)
            if i.module
                .as_ref()
                .is_some_and(|m| m.id.as_str() == "__future__") =>
        {
            StmtKind::Effect
        }
        Stmt::ImportFrom(_) => StmtKind::Import,
        Stmt::Assign(a) if plain_targets(&a.targets.iter().collect::<Vec<_>>()) => {
            StmtKind::Assignment
        }
        Stmt::AnnAssign(a) if matches!(&*a.target, Expr::Name(_)) => StmtKind::Assignment,
        Stmt::AugAssign(a) if matches!(&*a.target, Expr::Name(_)) => StmtKind::Assignment,
        Stmt::TypeAlias(_) => StmtKind::Assignment,
        _ => StmtKind::Effect,
    }
}

/// The module's top-level statements, in order.
pub fn collect(
    body: &[Stmt],
    line_of: impl Fn(ruff_text_size::TextSize) -> u32,
) -> Vec<TopStatement> {
    let mut seen: std::collections::HashMap<DefinitionName, u32> = Default::default();
    body.iter()
        .map(|stmt| {
            let mut encoder = Encoder::new("casher.statement");
            encoder.statement(stmt);
            let hash = *encoder.finish().as_bytes();
            let mut c = Collector::default();
            c.visit_stmt(stmt);
            if let Stmt::FunctionDef(f) = stmt {
                c.stores
                    .extend(f.parameters.iter().map(|p| p.name().id.to_string()));
            }
            let kind = kind_of(stmt);
            // Names a nested function declares `global` and assigns are
            // module bindings too.
            let mut binds = match stmt {
                Stmt::FunctionDef(f) => vec![f.name.id.to_string()],
                Stmt::ClassDef(cd) => vec![cd.name.id.to_string()],
                _ if kind == StmtKind::Inert => Vec::new(),
                _ => c.stores.clone(),
            };
            binds.extend(c.globals.iter().cloned());
            let binds = dedup(binds);
            let (id_kind, id_name) = identity_of(stmt, kind, &binds, &hash);
            let ordinal = {
                let slot = seen.entry(id_name.clone()).or_insert(0);
                *slot += 1;
                *slot - 1
            };
            TopStatement {
                hash,
                line: line_of(ruff_text_size::Ranged::range(stmt).start()),
                end_line: line_of(ruff_text_size::Ranged::range(stmt).end()),
                kind,
                id_kind,
                id_name,
                ordinal,
                effects: crate::effects::EffectFacts::of(stmt),
                binds,
                // Also imports inside functions: a name they bind is
                // followed like a module-level one.
                imports: if kind == StmtKind::Inert {
                    Vec::new()
                } else {
                    c.imports.clone()
                },
                uses: dedup(c.uses),
                locals: dedup(c.stores.clone()),
                attributes: {
                    let mut a = c.attributes;
                    a.sort();
                    a.dedup();
                    a
                },
                bare: dedup(c.bare),
                opaque: c.opaque,
                binds_dynamically: c.binds_dynamically,
            }
        })
        .collect()
}

/// Kind and name of a statement's identity: a `def`/`class` by its own
/// name (not the `global`s it writes), another binding statement by the
/// names it binds, anything else by its normalized content.
fn identity_of(
    stmt: &Stmt,
    kind: StmtKind,
    binds: &[String],
    hash: &[u8; 32],
) -> (DefinitionKind, DefinitionName) {
    let content = || DefinitionName::Content(blake3::Hash::from_bytes(*hash).to_hex().to_string());
    match stmt {
        Stmt::FunctionDef(f) => (
            DefinitionKind::Function,
            DefinitionName::Binds(f.name.id.to_string()),
        ),
        Stmt::ClassDef(c) => (
            DefinitionKind::Class,
            DefinitionName::Binds(c.name.id.to_string()),
        ),
        _ => {
            let id_kind = match kind {
                StmtKind::Assignment => DefinitionKind::Assignment,
                StmtKind::Import => DefinitionKind::Import,
                _ => DefinitionKind::Statement,
            };
            if binds.is_empty() {
                (id_kind, content())
            } else {
                (id_kind, DefinitionName::Binds(binds.join(",")))
            }
        }
    }
}

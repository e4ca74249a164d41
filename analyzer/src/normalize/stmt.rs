//! Statement encoding.

use ruff_python_ast::{
    Alias, Decorator, ElifElseClause, ExceptHandler, Expr, MatchCase, Parameter,
    ParameterWithDefault, Parameters, Stmt, TypeParam, TypeParams, WithItem,
};

use super::Encoder;

/// Statement tags. Never renumber: append, and bump the format version.
mod tag {
    pub const FUNCTION_DEF: u8 = 1;
    pub const CLASS_DEF: u8 = 2;
    pub const RETURN: u8 = 3;
    pub const DELETE: u8 = 4;
    pub const TYPE_ALIAS: u8 = 5;
    pub const ASSIGN: u8 = 6;
    pub const AUG_ASSIGN: u8 = 7;
    pub const ANN_ASSIGN: u8 = 8;
    pub const FOR: u8 = 9;
    pub const WHILE: u8 = 10;
    pub const IF: u8 = 11;
    pub const WITH: u8 = 12;
    pub const MATCH: u8 = 13;
    pub const RAISE: u8 = 14;
    pub const TRY: u8 = 15;
    pub const ASSERT: u8 = 16;
    pub const IMPORT: u8 = 17;
    pub const IMPORT_FROM: u8 = 18;
    pub const GLOBAL: u8 = 19;
    pub const NONLOCAL: u8 = 20;
    pub const EXPR: u8 = 21;
    pub const PASS: u8 = 22;
    pub const BREAK: u8 = 23;
    pub const CONTINUE: u8 = 24;
    pub const IPY: u8 = 25;
    pub const BODY: u8 = 40;
    pub const PARAMETERS: u8 = 41;
    pub const PARAMETER: u8 = 42;
    pub const HANDLER: u8 = 43;
    pub const WITH_ITEM: u8 = 44;
    pub const CASE: u8 = 45;
    pub const TYPE_PARAMS: u8 = 46;
    pub const TYPE_VAR: u8 = 47;
    pub const TYPE_VAR_TUPLE: u8 = 48;
    pub const PARAM_SPEC: u8 = 49;
    pub const ELIF: u8 = 50;
    pub const ALIAS: u8 = 51;
}

/// Is this statement a docstring (a plain string literal expression)?
pub(crate) fn is_docstring(stmt: &Stmt) -> bool {
    matches!(stmt, Stmt::Expr(e) if e.value.is_string_literal_expr())
}

impl Encoder {
    /// A block of statements. Function, class and module bodies drop a leading
    /// docstring: it is documentation, not behaviour.
    pub(super) fn body(&mut self, body: &[Stmt], may_have_docstring: bool) {
        let body = match body.split_first() {
            Some((first, rest)) if may_have_docstring && is_docstring(first) => rest,
            _ => body,
        };
        self.sink.tag(tag::BODY);
        self.sink.len(body.len());
        for stmt in body {
            self.stmt(stmt);
        }
    }

    pub(super) fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::FunctionDef(f) => {
                self.sink.tag(tag::FUNCTION_DEF);
                self.sink.bool(f.is_async);
                self.decorators(&f.decorator_list);
                self.sink.str(&f.name.id);
                self.type_params(f.type_params.as_deref());
                self.parameters(&f.parameters);
                self.opt_expr(f.returns.as_deref());
                self.body(&f.body, true);
            }
            Stmt::ClassDef(c) => {
                self.sink.tag(tag::CLASS_DEF);
                self.decorators(&c.decorator_list);
                self.sink.str(&c.name.id);
                self.type_params(c.type_params.as_deref());
                // `class C:` and `class C():` are the same class.
                match c.arguments.as_deref() {
                    Some(args) => self.arguments(&args.args, &args.keywords),
                    None => self.arguments(&[], &[]),
                }
                self.body(&c.body, true);
            }
            Stmt::Return(r) => {
                self.sink.tag(tag::RETURN);
                self.opt_expr(r.value.as_deref());
            }
            Stmt::Delete(d) => {
                // `del (a, b)`, `del [a, b]` and `del a, b` delete the same names.
                self.sink.tag(tag::DELETE);
                let mut flat = Vec::new();
                flatten_del_targets(&d.targets, &mut flat);
                self.sink.len(flat.len());
                for target in flat {
                    self.expr(target);
                }
            }
            Stmt::TypeAlias(t) => {
                self.sink.tag(tag::TYPE_ALIAS);
                self.expr(&t.name);
                self.type_params(t.type_params.as_deref());
                self.expr(&t.value);
            }
            Stmt::Assign(a) => {
                self.sink.tag(tag::ASSIGN);
                self.exprs(&a.targets);
                self.expr(&a.value);
            }
            Stmt::AugAssign(a) => {
                self.sink.tag(tag::AUG_ASSIGN);
                self.expr(&a.target);
                self.operator(a.op);
                self.expr(&a.value);
            }
            Stmt::AnnAssign(a) => {
                self.sink.tag(tag::ANN_ASSIGN);
                self.expr(&a.target);
                self.expr(&a.annotation);
                self.opt_expr(a.value.as_deref());
                self.sink.bool(a.simple);
            }
            Stmt::For(f) => {
                self.sink.tag(tag::FOR);
                self.sink.bool(f.is_async);
                self.expr(&f.target);
                self.expr(&f.iter);
                self.body(&f.body, false);
                self.body(&f.orelse, false);
            }
            Stmt::While(w) => {
                self.sink.tag(tag::WHILE);
                self.expr(&w.test);
                self.body(&w.body, false);
                self.body(&w.orelse, false);
            }
            Stmt::If(i) => {
                self.sink.tag(tag::IF);
                self.expr(&i.test);
                self.body(&i.body, false);
                self.sink.len(i.elif_else_clauses.len());
                for clause in &i.elif_else_clauses {
                    self.elif(clause);
                }
            }
            Stmt::With(w) => {
                self.sink.tag(tag::WITH);
                self.sink.bool(w.is_async);
                self.sink.len(w.items.len());
                for item in &w.items {
                    self.with_item(item);
                }
                self.body(&w.body, false);
            }
            Stmt::Match(m) => {
                self.sink.tag(tag::MATCH);
                self.expr(&m.subject);
                self.sink.len(m.cases.len());
                for case in &m.cases {
                    self.match_case(case);
                }
            }
            Stmt::Raise(r) => {
                self.sink.tag(tag::RAISE);
                self.opt_expr(r.exc.as_deref());
                self.opt_expr(r.cause.as_deref());
            }
            Stmt::Try(t) => {
                self.sink.tag(tag::TRY);
                self.sink.bool(t.is_star);
                self.body(&t.body, false);
                self.sink.len(t.handlers.len());
                for handler in &t.handlers {
                    self.handler(handler);
                }
                self.body(&t.orelse, false);
                self.body(&t.finalbody, false);
            }
            Stmt::Assert(a) => {
                self.sink.tag(tag::ASSERT);
                self.expr(&a.test);
                self.opt_expr(a.msg.as_deref());
            }
            Stmt::Import(i) => {
                self.sink.tag(tag::IMPORT);
                self.sink.bool(i.is_lazy);
                self.aliases(&i.names);
            }
            Stmt::ImportFrom(i) => {
                self.sink.tag(tag::IMPORT_FROM);
                self.sink.bool(i.is_lazy);
                self.sink.u64(u64::from(i.level));
                self.opt_identifier(i.module.as_ref().map(|m| m.id.as_str()));
                self.aliases(&i.names);
            }
            Stmt::Global(g) => {
                self.sink.tag(tag::GLOBAL);
                self.identifiers(g.names.iter().map(|n| n.id.as_str()));
            }
            Stmt::Nonlocal(n) => {
                self.sink.tag(tag::NONLOCAL);
                self.identifiers(n.names.iter().map(|n| n.id.as_str()));
            }
            Stmt::Expr(e) => {
                self.sink.tag(tag::EXPR);
                self.expr(&e.value);
            }
            Stmt::Pass(_) => self.sink.tag(tag::PASS),
            Stmt::Break(_) => self.sink.tag(tag::BREAK),
            Stmt::Continue(_) => self.sink.tag(tag::CONTINUE),
            Stmt::IpyEscapeCommand(c) => {
                self.sink.tag(tag::IPY);
                self.sink.u64(c.kind as u64);
                self.sink.str(&c.value);
            }
        }
    }

    fn elif(&mut self, clause: &ElifElseClause) {
        self.sink.tag(tag::ELIF);
        self.opt_expr(clause.test.as_ref());
        self.body(&clause.body, false);
    }

    fn with_item(&mut self, item: &WithItem) {
        self.sink.tag(tag::WITH_ITEM);
        self.expr(&item.context_expr);
        self.opt_expr(item.optional_vars.as_deref());
    }

    fn handler(&mut self, handler: &ExceptHandler) {
        let ExceptHandler::ExceptHandler(h) = handler;
        self.sink.tag(tag::HANDLER);
        self.opt_expr(h.type_.as_deref());
        self.opt_identifier(h.name.as_ref().map(|n| n.id.as_str()));
        self.body(&h.body, false);
    }

    fn match_case(&mut self, case: &MatchCase) {
        self.sink.tag(tag::CASE);
        self.pattern(&case.pattern);
        self.opt_expr(case.guard.as_deref());
        self.body(&case.body, false);
    }

    fn decorators(&mut self, decorators: &[Decorator]) {
        self.sink.len(decorators.len());
        for decorator in decorators {
            self.expr(&decorator.expression);
        }
    }

    fn aliases(&mut self, aliases: &[Alias]) {
        self.sink.len(aliases.len());
        for alias in aliases {
            self.sink.tag(tag::ALIAS);
            self.sink.str(&alias.name.id);
            self.opt_identifier(alias.asname.as_ref().map(|n| n.id.as_str()));
        }
    }

    pub(super) fn parameters(&mut self, parameters: &Parameters) {
        self.sink.tag(tag::PARAMETERS);
        self.parameter_list(&parameters.posonlyargs);
        self.parameter_list(&parameters.args);
        self.opt_parameter(parameters.vararg.as_deref());
        self.parameter_list(&parameters.kwonlyargs);
        self.opt_parameter(parameters.kwarg.as_deref());
    }

    fn parameter_list(&mut self, list: &[ParameterWithDefault]) {
        self.sink.len(list.len());
        for p in list {
            self.parameter(&p.parameter);
            self.opt_expr(p.default.as_deref());
        }
    }

    fn opt_parameter(&mut self, parameter: Option<&Parameter>) {
        match parameter {
            Some(p) => {
                self.sink.bool(true);
                self.parameter(p);
            }
            None => self.sink.bool(false),
        }
    }

    fn parameter(&mut self, parameter: &Parameter) {
        self.sink.tag(tag::PARAMETER);
        self.sink.str(&parameter.name.id);
        self.opt_expr(parameter.annotation.as_deref());
    }

    fn type_params(&mut self, params: Option<&TypeParams>) {
        self.sink.tag(tag::TYPE_PARAMS);
        let Some(params) = params else {
            self.sink.len(0);
            return;
        };
        self.sink.len(params.type_params.len());
        for param in &params.type_params {
            match param {
                TypeParam::TypeVar(t) => {
                    self.sink.tag(tag::TYPE_VAR);
                    self.sink.str(&t.name.id);
                    self.opt_expr(t.bound.as_deref());
                    self.opt_expr(t.default.as_deref());
                }
                TypeParam::TypeVarTuple(t) => {
                    self.sink.tag(tag::TYPE_VAR_TUPLE);
                    self.sink.str(&t.name.id);
                    self.opt_expr(t.default.as_deref());
                }
                TypeParam::ParamSpec(t) => {
                    self.sink.tag(tag::PARAM_SPEC);
                    self.sink.str(&t.name.id);
                    self.opt_expr(t.default.as_deref());
                }
            }
        }
    }

    pub(super) fn opt_identifier(&mut self, name: Option<&str>) {
        match name {
            Some(name) => {
                self.sink.bool(true);
                self.sink.str(name);
            }
            None => self.sink.bool(false),
        }
    }

    fn identifiers<'a>(&mut self, names: impl ExactSizeIterator<Item = &'a str>) {
        self.sink.len(names.len());
        for name in names {
            self.sink.str(name);
        }
    }
}

fn flatten_del_targets<'a>(targets: &'a [Expr], out: &mut Vec<&'a Expr>) {
    for target in targets {
        match target {
            Expr::Tuple(t) => flatten_del_targets(&t.elts, out),
            Expr::List(l) => flatten_del_targets(&l.elts, out),
            other => out.push(other),
        }
    }
}

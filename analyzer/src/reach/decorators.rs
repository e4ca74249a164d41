//! Does applying a decorator act beyond the object it decorates?
//!
//! A project decorator runs at import. Its definition counts as an effect
//! of its module (reached by every function that imports the module) unless
//! the code that runs at decoration provably touches nothing but the
//! decorated object and objects it creates itself. That code is the
//! decorator function's body, the body of what it returns when it is a
//! factory (`@group()` runs `group`, then the `decorator` it returns), and
//! everything those call; nested functions that are only returned as the
//! final wrapper or stored on the object do not run.
//!
//! Values are tracked by what they may alias ([`Abs`]): the decorated
//! object, something nobody else can see (a literal, a fresh container, a
//! nested function), or anything. Writes are allowed into the first two
//! only; writes deeper than one attribute of the decorated class only
//! through attributes its own body defines (`cls.__rich_repr__.angular =
//! ...` when the class defines `__rich_repr__`: an inherited one would be
//! shared with the base). Calls are followed into project functions;
//! builtins and the standard library are taken as not calling back into the
//! objects passed to them (they see no project state of their own); any
//! other call (a class, a third-party function, a parameter, a computed
//! callee) makes the decoration count. The walk is bounded: past its budget
//! it counts too. Every "does not act" answer is therefore a proof under
//! these rules; every doubt is an effect (a miss, never a stale hit).

use std::cell::Cell;
use std::collections::HashMap;

use crate::behaviour::{CallFacts, FnFacts, LocalKind, Value, WriteKind};
use crate::effects::{Decorated, Decoration};
use crate::parse::ParsedFile;
use crate::symbols::TopStatement;

use super::effects::Target;
use super::Walker;

/// Calls followed for one decoration before it counts as acting.
const BUDGET: usize = 256;

/// What a name may hold.
#[derive(Debug, Clone, Copy)]
enum Abs<'s> {
    /// The decorated object.
    Decorated,
    /// A literal or an object only this code can see.
    Private,
    /// A nested function (its facts, and the frames it closes over).
    Nested(&'s FnFacts, usize),
    /// A module-level name of the module the code is in.
    Global,
    /// Anything.
    Unknown,
}

struct Frame<'s> {
    facts: &'s FnFacts,
    params: HashMap<&'s str, Abs<'s>>,
}

/// One decoration's evaluation.
struct Eval<'s, 'm, 'a> {
    walker: &'s Walker<'m, 'a>,
    /// Attributes defined by the decorated class's own body.
    own: &'s [String],
    /// What the decorator is applied to: the decorated object, or anything
    /// when a project decorator below it may have returned something else
    /// (a shared function).
    subject: Abs<'s>,
    steps: Cell<usize>,
}

type Verdict = Result<(), &'static str>;

impl Walker<'_, '_> {
    /// Whether decoration `d`, evaluated in project module `module`, may
    /// act on anything but the decorated object: `Some(why)` if it may.
    pub(super) fn decoration_acts<'s>(
        &'s self,
        module: &str,
        parsed: &'s ParsedFile,
        d: &'s Decoration,
    ) -> Option<&'static str> {
        let Some(chain) = &d.chain else {
            return Some("a computed decorator acts when the module is imported");
        };
        let target = self.target(module, parsed, chain);
        match (&d.on, target) {
            (_, Target::Inert) => None,
            (Decorated::Header, _) => {
                Some("a nested class header acts when the module is imported")
            }
            (on, Target::Function(owner, binders)) => {
                let Some(owner_parsed) = self.view(&owner).and_then(|v| v.parsed) else {
                    return Some("a decorator acts when the module is imported");
                };
                let own: &[String] = match on {
                    Decorated::Class(own) => own,
                    _ => &[],
                };
                let below_inert = d.below.iter().all(|chain| {
                    chain.as_ref().is_some_and(|chain| {
                        matches!(self.target(module, parsed, chain), Target::Inert)
                    })
                });
                let eval = Eval {
                    walker: self,
                    own,
                    subject: if below_inert {
                        Abs::Decorated
                    } else {
                        Abs::Unknown
                    },
                    steps: Cell::new(0),
                };
                let acts = binders.iter().any(|binder| {
                    eval.steps.set(0);
                    eval.binder(&owner, owner_parsed, binder, d).is_err()
                });
                acts.then_some("a decorator acts when the module is imported")
            }
            // A plain third-party name only wraps (one that registers is
            // seen by the run-time check); a project lambda, class or
            // instance used as a decorator counts.
            (_, Target::Foreign) if d.args.is_none() && chain.len() == 1 => None,
            _ => Some("a decorator acts when the module is imported"),
        }
    }
}

/// A decorator argument at module level: a literal is private, a name is
/// module state.
fn shape_only(value: &Value) -> Abs<'static> {
    match value {
        Value::Const => Abs::Private,
        _ => Abs::Unknown,
    }
}

/// Binds call arguments to `params` the way Python does, by position then
/// keyword; what is left gets its default's shape. Anything unclear
/// (spread arguments, variadic parameters) is unknown.
fn bind_positional<'s>(
    params: &'s [crate::behaviour::ParamFacts],
    args: &[Abs<'s>],
    keywords: &[(&str, Abs<'s>)],
    spread: bool,
) -> HashMap<&'s str, Abs<'s>> {
    let mut bound = HashMap::new();
    let mut positional = args.iter();
    for p in params {
        let value = if p.variadic || spread {
            Abs::Unknown
        } else if let Some(v) = p.positional.then(|| positional.next()).flatten() {
            *v
        } else if let Some((_, v)) = keywords.iter().find(|(k, _)| *k == p.name) {
            *v
        } else {
            match &p.default {
                Some(Value::Const) => Abs::Private,
                _ => Abs::Unknown,
            }
        };
        bound.insert(p.name.as_str(), value);
    }
    bound
}

impl<'s> Eval<'s, '_, '_> {
    fn step(&self) -> Verdict {
        let n = self.steps.get() + 1;
        self.steps.set(n);
        if n > BUDGET {
            Err("too deep to follow")
        } else {
            Ok(())
        }
    }

    /// Applies decoration `d` with one `def` of its decorator: its own
    /// decorators must be builtin or stdlib (`@overload`, `@wraps(...)`),
    /// whose product calls the function or nothing.
    fn binder(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        binder: &'s TopStatement,
        d: &Decoration,
    ) -> Verdict {
        let facts = self.facts_of(module, parsed, binder)?;
        match &d.args {
            // `@deco`: the decorated object is its first argument.
            None => self.call(module, parsed, facts, 0, |params| {
                bind_positional(params, &[self.subject], &[], false)
            }),
            // `@factory(...)`: what it returns is called with it.
            Some(args) => {
                let given: Vec<Abs> = args.args.iter().map(shape_only).collect();
                let keywords: Vec<(&str, Abs)> = args
                    .keywords
                    .iter()
                    .map(|(k, v)| (k.as_str(), shape_only(v)))
                    .collect();
                self.call(module, parsed, facts, 1, |params| {
                    bind_positional(params, &given, &keywords, args.spread)
                })
            }
        }
    }

    /// What calling the function `binder` defines runs: its body, when its
    /// own decorators are builtin or stdlib (`@overload`, `@lru_cache`),
    /// whose product calls the function or nothing.
    fn facts_of(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        binder: &'s TopStatement,
    ) -> Result<&'s FnFacts, &'static str> {
        for own in &binder.effects.decorators {
            let inert = own.chain.as_ref().is_some_and(|chain| {
                matches!(self.walker.target(module, parsed, chain), Target::Inert)
            });
            if !inert {
                return Err("a decorated function");
            }
        }
        binder.effects.function.as_deref().ok_or("not summarized")
    }

    /// Runs top-level function `facts` of `module`; its result is called
    /// `then` more times (the last time with the decorated object).
    fn call(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        facts: &'s FnFacts,
        then: u8,
        bind: impl FnOnce(&'s [crate::behaviour::ParamFacts]) -> HashMap<&'s str, Abs<'s>>,
    ) -> Verdict {
        let frame = Frame {
            facts,
            params: bind(&facts.params),
        };
        self.run(module, parsed, vec![frame], then)
    }

    fn lookup(&self, frames: &[Frame<'s>], name: &str) -> Abs<'s> {
        for (depth, frame) in frames.iter().enumerate().rev() {
            let param = frame.params.get(name).copied();
            match (param, frame.facts.local(name)) {
                (Some(p), None) => return p,
                (None, Some(LocalKind::Fresh)) => return Abs::Private,
                (None, Some(LocalKind::Nested(i))) => {
                    return Abs::Nested(&frame.facts.nested[i].facts, depth)
                }
                (Some(Abs::Private), Some(LocalKind::Fresh)) => return Abs::Private,
                (Some(_), Some(_)) | (None, Some(LocalKind::Other)) => return Abs::Unknown,
                (None, None) => {}
            }
        }
        Abs::Global
    }

    fn value(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        frames: &[Frame<'s>],
        value: &Value,
    ) -> Abs<'s> {
        match value {
            Value::Const => Abs::Private,
            Value::Name(n) => match self.lookup(frames, n) {
                Abs::Global => {
                    let inert = MODULE_STRINGS.contains(&n.as_str())
                        || matches!(
                            self.walker.target(module, parsed, std::slice::from_ref(n)),
                            Target::Inert
                        );
                    // A builtin or stdlib name holds no project state; a
                    // project global passed on may be written through.
                    if inert {
                        Abs::Private
                    } else {
                        Abs::Unknown
                    }
                }
                other => other,
            },
            Value::Call(_) | Value::Other => Abs::Unknown,
        }
    }

    /// Runs the innermost frame's function; its result is called `then`
    /// more times.
    fn run(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        frames: Vec<Frame<'s>>,
        then: u8,
    ) -> Verdict {
        self.step()?;
        let facts = frames.last().map(|f| f.facts).ok_or("no frame")?;
        if facts.unknown.is_some() {
            return Err("does something not modelled");
        }
        for write in &facts.writes {
            match (self.lookup(&frames, &write.root), &write.how) {
                (Abs::Private, _) | (Abs::Nested(..), WriteKind::Attribute) => {}
                (Abs::Decorated, WriteKind::Attribute) => {}
                (Abs::Decorated, WriteKind::Deep(attr)) if self.own.contains(attr) => {}
                _ => return Err("writes shared state"),
            }
        }
        for (index, call) in facts.calls.iter().enumerate() {
            let returned = facts.returns.contains(&Value::Call(index));
            self.run_call(module, parsed, &frames, facts, call, returned, then)?;
        }
        for nested in &facts.nested {
            for decorator in &nested.decorators {
                // Applying a builtin or stdlib decorator's product (e.g.
                // `functools.wraps(f)`) is fine; anything else is followed
                // as a call with the new function.
                match decorator {
                    Value::Call(i)
                        if self.stdlib_callee(module, parsed, &frames, &facts.calls[*i]) => {}
                    Value::Name(n)
                        if matches!(self.lookup(&frames, n), Abs::Global)
                            && matches!(
                                self.walker.target(module, parsed, std::slice::from_ref(n)),
                                Target::Inert
                            ) => {}
                    _ => return Err("decorates a nested function with project code"),
                }
            }
        }
        if then > 0 {
            for returned in &facts.returns {
                match returned {
                    Value::Const | Value::Call(_) => {}
                    Value::Name(n) => {
                        let value = self.lookup(&frames, n);
                        self.call_value(
                            module,
                            parsed,
                            &frames,
                            value,
                            then - 1,
                            &Site::with(self.subject),
                        )?;
                    }
                    Value::Other => return Err("returns a computed callable"),
                }
            }
        }
        Ok(())
    }

    /// Whether `call`'s callee is a builtin or stdlib name.
    fn stdlib_callee(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        frames: &[Frame<'s>],
        call: &CallFacts,
    ) -> bool {
        let Some(chain) = &call.callee else {
            return false;
        };
        matches!(self.lookup(frames, &chain[0]), Abs::Global)
            && matches!(self.walker.target(module, parsed, chain), Target::Inert)
    }

    /// Runs `call` of the function `facts` in the innermost frame; when it
    /// is `returned` and the function's result is called `then` more times,
    /// so is the call's.
    #[allow(clippy::too_many_arguments)]
    fn run_call(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        frames: &[Frame<'s>],
        facts: &'s FnFacts,
        call: &'s CallFacts,
        returned: bool,
        then: u8,
    ) -> Verdict {
        let then = if returned { then } else { 0 };
        let site = Site {
            args: call
                .args
                .iter()
                .map(|v| self.value(module, parsed, frames, v))
                .collect(),
            keywords: call
                .keywords
                .iter()
                .map(|(k, v)| (k.as_str(), self.value(module, parsed, frames, v)))
                .collect(),
            spread: call.spread,
            returned,
            // The result of a project call may be a function (a wrapper, a
            // `partial`): handed to the stdlib, it may be called there.
            hands_on_results: call
                .args
                .iter()
                .chain(call.keywords.iter().map(|(_, v)| v))
                .any(|v| match v {
                    Value::Call(j) => !self.stdlib_callee(module, parsed, frames, &facts.calls[*j]),
                    _ => false,
                }),
        };
        let Some(chain) = &call.callee else {
            return Err("calls a computed callable");
        };
        let root = self.lookup(frames, &chain[0]);
        // `return partial(module_function, ...)`: the module function is
        // what gets called with the decorated object.
        if let (true, Some(Value::Name(first)), Abs::Global) =
            (returned && then > 0, call.args.first(), root)
        {
            if chain.last().is_some_and(|n| n == "partial")
                && matches!(self.lookup(frames, first), Abs::Global)
                && matches!(self.walker.target(module, parsed, chain), Target::Inert)
            {
                let inner = site.partial_called_with(self.subject);
                let callee = std::slice::from_ref(first);
                return self.global_call(module, parsed, frames, callee, &inner, then - 1);
            }
        }
        match root {
            Abs::Global => self.global_call(module, parsed, frames, chain, &site, then),
            // A method of a literal or fresh container; what it returns
            // is not followed, so it must not be called on.
            Abs::Private if chain.len() > 1 && then == 0 => Ok(()),
            _ if chain.len() > 1 => Err("calls a method of an object it does not own"),
            other => self.call_value(module, parsed, frames, other, then, &site),
        }
    }

    /// Calls what a name holds.
    fn call_value(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        frames: &[Frame<'s>],
        callee: Abs<'s>,
        then: u8,
        site: &Site<'s, '_>,
    ) -> Verdict {
        match callee {
            // Calling a literal raises; nothing runs.
            Abs::Private => Ok(()),
            Abs::Nested(facts, depth) => {
                let mut inner: Vec<Frame<'s>> = frames[..=depth]
                    .iter()
                    .map(|f| Frame {
                        facts: f.facts,
                        params: f.params.clone(),
                    })
                    .collect();
                inner.push(Frame {
                    facts,
                    params: bind_positional(&facts.params, &site.args, &site.keywords, site.spread),
                });
                self.run(module, parsed, inner, then)
            }
            Abs::Decorated => Err("calls the decorated object"),
            Abs::Global => Err("calls a module global"),
            Abs::Unknown => Err("calls an unknown object"),
        }
    }

    /// Calls a module-level name of `module` (or an attribute chain on it).
    fn global_call(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        frames: &[Frame<'s>],
        chain: &[String],
        site: &Site<'s, '_>,
        then: u8,
    ) -> Verdict {
        match self.walker.target(module, parsed, chain) {
            Target::Inert => {
                let name = chain.last().map_or("", String::as_str);
                if matches!(name, "partial" | "partialmethod") && site.returned {
                    // `functools.partial(f, ...)` returned: `f` is called
                    // when (and with what) the result is.
                    let Some(first) = site.args.first() else {
                        return Ok(());
                    };
                    if then == 0 {
                        return Ok(());
                    }
                    let inner = site.partial_called_with(self.subject);
                    return self.call_value(module, parsed, frames, *first, then - 1, &inner);
                }
                // Any other standard-library function may keep what it is
                // given (`mimetypes.add_type`, `random.seed`, `atexit`).
                if !STATELESS.contains(&name) {
                    return Err("calls a standard-library function that may keep state");
                }
                if INSPECTING.contains(&name) {
                    return Ok(());
                }
                if site.hands_on_results {
                    return Err("hands a project function's result to the standard library");
                }
                // They may call methods of or write into what they are given
                // (`update_wrapper` writes its first argument): only the
                // decorated object and private values may be handed to them.
                if site
                    .args
                    .iter()
                    .chain(site.keywords.iter().map(|(_, v)| v))
                    .any(|v| matches!(v, Abs::Unknown | Abs::Global))
                    || site.spread
                {
                    return Err("hands project state to the standard library");
                }
                if NOT_CALLING.contains(&name) {
                    return Ok(());
                }
                // A nested function handed to a builtin may be called by it,
                // with anything.
                for value in site.args.iter().chain(site.keywords.iter().map(|(_, v)| v)) {
                    if let Abs::Nested(..) = value {
                        self.call_value(module, parsed, frames, *value, 0, &Site::unknown())?;
                    }
                }
                Ok(())
            }
            Target::Function(owner, binders) => {
                let owner_parsed = self
                    .walker
                    .view(&owner)
                    .and_then(|v| v.parsed)
                    .ok_or("not parsed")?;
                // Private or decorated arguments keep their meaning in the
                // callee; a nested function passed on is unknown there (its
                // closure is not the callee's).
                let opaque = |v: &Abs<'s>| match v {
                    Abs::Nested(..) => Abs::Unknown,
                    other => *other,
                };
                let args: Vec<Abs> = site.args.iter().map(opaque).collect();
                let keywords: Vec<(&str, Abs)> =
                    site.keywords.iter().map(|(k, v)| (*k, opaque(v))).collect();
                for binder in binders {
                    let facts = self.facts_of(&owner, owner_parsed, binder)?;
                    self.call(&owner, owner_parsed, facts, then, |params| {
                        bind_positional(params, &args, &keywords, site.spread)
                    })?;
                }
                Ok(())
            }
            _ => Err("calls code that may act"),
        }
    }
}

/// Module attributes that hold strings whatever the module.
const MODULE_STRINGS: &[&str] = &[
    "__name__",
    "__qualname__",
    "__module__",
    "__file__",
    "__doc__",
];

/// Builtins and stdlib callables that keep no state of their own: the only
/// ones a decoration may call without counting.
const STATELESS: &[&str] = &[
    "getattr",
    "hasattr",
    "isinstance",
    "issubclass",
    "callable",
    "id",
    "type",
    "setattr",
    "wraps",
    "update_wrapper",
    "partial",
    "partialmethod",
    "cached_property",
    "lru_cache",
    "cache",
    "total_ordering",
    "singledispatch",
    "singledispatchmethod",
    "staticmethod",
    "classmethod",
    "property",
    "abstractmethod",
    "dataclass",
    "field",
    "signature",
    "getdoc",
    "cast",
    "overload",
    "final",
];

/// Of those, the ones that only look at their arguments.
const INSPECTING: &[&str] = &[
    "getattr",
    "hasattr",
    "isinstance",
    "issubclass",
    "callable",
    "id",
    "type",
];

/// Of those, the ones that store the functions passed to them but never
/// call them at decoration.
const NOT_CALLING: &[&str] = &[
    "setattr",
    "wraps",
    "update_wrapper",
    "partialmethod",
    "cached_property",
    "lru_cache",
    "cache",
    "singledispatch",
    "singledispatchmethod",
    "staticmethod",
    "classmethod",
    "property",
    "abstractmethod",
    "field",
    "overload",
    "final",
];

/// A call's arguments, by what they may alias.
struct Site<'s, 'c> {
    args: Vec<Abs<'s>>,
    keywords: Vec<(&'c str, Abs<'s>)>,
    spread: bool,
    /// The call's result is what the calling function returns.
    returned: bool,
    /// An argument is the result of a project or nested function's call.
    hands_on_results: bool,
}

impl<'s, 'c> Site<'s, 'c> {
    fn with(arg: Abs<'s>) -> Self {
        Site {
            args: vec![arg],
            keywords: Vec::new(),
            spread: false,
            returned: false,
            hands_on_results: false,
        }
    }

    /// The call that `partial(f, *args, **keywords)` (this site) makes of
    /// `f` when called with `last`.
    fn partial_called_with(&self, last: Abs<'s>) -> Site<'s, 'c> {
        let mut args = self.args.get(1..).unwrap_or_default().to_vec();
        args.push(last);
        Site {
            args,
            keywords: self.keywords.clone(),
            spread: self.spread,
            returned: false,
            hands_on_results: false,
        }
    }

    fn unknown() -> Self {
        Site {
            args: Vec::new(),
            keywords: Vec::new(),
            spread: true,
            returned: false,
            hands_on_results: false,
        }
    }
}

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
                let eval = Eval {
                    walker: self,
                    own,
                    steps: Cell::new(0),
                };
                let acts = binders.iter().any(|binder| {
                    eval.steps.set(0);
                    eval.binder(&owner, owner_parsed, binder, d).is_err()
                });
                acts.then_some("a decorator acts when the module is imported")
            }
            // A plain name that is not a project function only wraps (a
            // foreign one that registers is seen by the run-time check).
            (_, _) if d.args.is_none() && chain.len() == 1 => None,
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
                bind_positional(params, &[Abs::Decorated], &[], false)
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

    fn value(&self, frames: &[Frame<'s>], value: &Value) -> Abs<'s> {
        match value {
            Value::Const => Abs::Private,
            Value::Name(n) => match self.lookup(frames, n) {
                // A module global passed on may be written through.
                Abs::Global => Abs::Unknown,
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
            let returned = then > 0 && facts.returns.contains(&Value::Call(index));
            self.run_call(
                module,
                parsed,
                &frames,
                call,
                if returned { then } else { 0 },
            )?;
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
                            &[Abs::Decorated],
                            &[],
                            false,
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

    fn run_call(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        frames: &[Frame<'s>],
        call: &CallFacts,
        then: u8,
    ) -> Verdict {
        let args: Vec<Abs> = call.args.iter().map(|v| self.value(frames, v)).collect();
        let keywords: Vec<(&str, Abs)> = call
            .keywords
            .iter()
            .map(|(k, v)| (k.as_str(), self.value(frames, v)))
            .collect();
        let Some(chain) = &call.callee else {
            return Err("calls a computed callable");
        };
        let root = self.lookup(frames, &chain[0]);
        if chain.len() > 1 {
            return match root {
                // A method of a literal or fresh container; what it
                // returns is not followed, so it must not be called on.
                Abs::Private if then == 0 => Ok(()),
                Abs::Global => self.global_call(
                    module,
                    parsed,
                    frames,
                    chain,
                    &args,
                    &keywords,
                    call.spread,
                    then,
                ),
                _ => Err("calls a method of an object it does not own"),
            };
        }
        match root {
            Abs::Global => self.global_call(
                module,
                parsed,
                frames,
                chain,
                &args,
                &keywords,
                call.spread,
                then,
            ),
            other => self.call_value(
                module,
                parsed,
                frames,
                other,
                then,
                &args,
                &keywords,
                call.spread,
            ),
        }
    }

    /// Calls what a name holds with these arguments.
    #[allow(clippy::too_many_arguments)]
    fn call_value(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        frames: &[Frame<'s>],
        callee: Abs<'s>,
        then: u8,
        args: &[Abs<'s>],
        keywords: &[(&str, Abs<'s>)],
        spread: bool,
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
                    params: bind_positional(&facts.params, args, keywords, spread),
                });
                self.run(module, parsed, inner, then)
            }
            Abs::Decorated => Err("calls the decorated object"),
            Abs::Global => Err("calls a module global"),
            Abs::Unknown => Err("calls an unknown object"),
        }
    }

    /// Calls a module-level name of `module` (or an attribute chain on it).
    #[allow(clippy::too_many_arguments)]
    fn global_call(
        &self,
        module: &str,
        parsed: &'s ParsedFile,
        frames: &[Frame<'s>],
        chain: &[String],
        args: &[Abs<'s>],
        keywords: &[(&str, Abs<'s>)],
        spread: bool,
        then: u8,
    ) -> Verdict {
        match self.walker.target(module, parsed, chain) {
            Target::Inert => {
                // `functools.partial(f, ...)` returned by a factory: `f` is
                // what gets called with the decorated object.
                if chain.last().is_some_and(|n| n == "partial") {
                    if let Some((first, rest)) = args.split_first() {
                        if then > 0 {
                            let mut bound: Vec<Abs> = rest.to_vec();
                            bound.push(Abs::Decorated);
                            return self.call_value(
                                module,
                                parsed,
                                frames,
                                *first,
                                then - 1,
                                &bound,
                                keywords,
                                spread,
                            );
                        }
                        return Ok(());
                    }
                }
                // A nested function handed to a builtin may be called by it.
                for value in args.iter().chain(keywords.iter().map(|(_, v)| v)) {
                    if let Abs::Nested(..) = value {
                        self.call_value(module, parsed, frames, *value, 0, &[], &[], true)?;
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
                let args: Vec<Abs> = args.iter().map(opaque).collect();
                let keywords: Vec<(&str, Abs)> =
                    keywords.iter().map(|(k, v)| (*k, opaque(v))).collect();
                for binder in binders {
                    let facts = self.facts_of(&owner, owner_parsed, binder)?;
                    self.call(&owner, owner_parsed, facts, then, |params| {
                        bind_positional(params, &args, &keywords, spread)
                    })?;
                }
                Ok(())
            }
            _ => Err("calls code that may act"),
        }
    }
}

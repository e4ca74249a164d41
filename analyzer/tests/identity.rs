//! Structural identity: what a function's code inputs are named by does not
//! depend on positions, a name bound twice is two definitions, definitions
//! that act at import are reached, and no input aborts the analysis.

use std::collections::BTreeMap;
use std::path::Path;

use casher_analyzer::{analyze, AnalyzeOptions, AnalyzerError, DepsReport};

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn report(root: &Path, function: &str) -> DepsReport {
    let options = AnalyzeOptions {
        function: Some(function.into()),
        ..AnalyzeOptions::default()
    };
    analyze(&root.join("main.py"), &options).unwrap()
}

/// Identity text -> hash of every reached definition.
fn inputs(r: &DepsReport) -> BTreeMap<String, String> {
    r.definitions
        .iter()
        .map(|d| (d.id.to_string(), d.hash.clone()))
        .collect()
}

const LIB: &str = "import logging\n\
logger = logging.getLogger(__name__)\n\
logger.setLevel(logging.INFO)\n\
_REGISTRY = []\n\
_REGISTRY.append(1)\n\
_REGISTRY.append(1)\n\
tmp = 3\n\
del tmp\n\
SCALE = 2\n\
SCALE = SCALE * 3\n\
\n\
def helper(x):\n    return x * SCALE + len(_REGISTRY)\n\
\n\
def unused():\n    return 0\n";

/// The same module after black-like reformatting, a comment line at the
/// top, and a line added to the unused function.
const LIB_MOVED: &str = "# a comment line at the top\n\
import logging\n\
\n\
logger = logging.getLogger(__name__)\n\
logger.setLevel(\n    logging.INFO,\n)\n\
_REGISTRY = []\n\
_REGISTRY.append(1)\n\
_REGISTRY.append(1)\n\
tmp = 3\n\
del tmp\n\
SCALE = 2\n\
SCALE = SCALE * 3\n\
\n\
\n\
def helper(x):\n    return x * SCALE + len(_REGISTRY)\n\
\n\
\n\
def unused():\n    y = 1\n    return 0\n";

#[test]
fn positions_never_change_an_identity() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "main.py",
                "from lib import helper\n\ndef f():\n    return helper(2)\n",
            ),
            ("lib.py", LIB),
        ],
    );
    let before = report(dir.path(), "f");
    write(dir.path(), &[("lib.py", LIB_MOVED)]);
    let after = report(dir.path(), "f");
    assert_eq!(inputs(&before), inputs(&after));
    assert_eq!(before.digest, after.digest);
    // Lines moved, identities did not.
    assert_ne!(
        before
            .definitions
            .iter()
            .map(|d| d.line)
            .collect::<Vec<_>>(),
        after.definitions.iter().map(|d| d.line).collect::<Vec<_>>()
    );
    // Statements that bind nothing are named by content, with ordinals
    // among identical ones.
    let names: Vec<String> = before
        .definitions
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    let appends: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("statement lib.="))
        .collect();
    assert_eq!(appends.len(), 4, "{names:?}"); // setLevel, 2 x append, del
    assert!(names
        .iter()
        .any(|n| n.ends_with("#1") && n.starts_with("statement lib.=")));
    // Every identity is unique (a lookup keys inputs by it).
    assert_eq!(inputs(&before).len(), before.definitions.len());
}

#[test]
fn a_name_bound_twice_is_two_definitions_both_reached() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "main.py",
                "from lib import helper\n\ndef f():\n    return helper(2)\n",
            ),
            ("lib.py", LIB),
        ],
    );
    let r = report(dir.path(), "f");
    let ids = inputs(&r);
    assert!(ids.contains_key("assignment lib.SCALE#0"), "{ids:?}");
    assert!(ids.contains_key("assignment lib.SCALE#1"), "{ids:?}");
    // Editing either changes that definition only.
    write(
        dir.path(),
        &[("lib.py", &LIB.replace("SCALE = 2", "SCALE = 5"))],
    );
    let edited = inputs(&report(dir.path(), "f"));
    assert_ne!(
        ids["assignment lib.SCALE#0"],
        edited["assignment lib.SCALE#0"]
    );
    assert_eq!(
        ids["assignment lib.SCALE#1"],
        edited["assignment lib.SCALE#1"]
    );
}

#[test]
fn wrapped_rebinding_and_two_star_imports() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("main.py", "from pkg import fit, other\n\ndef f():\n    return fit(1) + other()\n"),
            ("pkg/__init__.py", "from .a import *\nfrom .b import *\nimport os\nif os.sep:\n    fit = fit.__wrapped__\n"),
            ("pkg/a.py", "import functools\n__all__ = ['fit']\n@functools.lru_cache\ndef fit(x):\n    return x\n"),
            ("pkg/b.py", "__all__ = ['other']\ndef other():\n    return 2\n"),
        ],
    );
    let r = report(dir.path(), "f");
    let ids = inputs(&r);
    assert!(ids.contains_key("import pkg.*#0"), "{ids:?}");
    assert!(ids.contains_key("import pkg.*#1"), "{ids:?}");
    assert!(
        ids.keys().any(|k| k.starts_with("statement pkg.fit#")),
        "{ids:?}"
    );
    // The rebinding reads the star-bound `fit`: its definition counts.
    assert!(ids.contains_key("function pkg.a.fit#0"), "{ids:?}");
    assert_eq!(ids.len(), r.definitions.len());
}

/// (case, files, edit, must the digest of `f` change?)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, (&'a str, &'a str), bool);

fn effect_cases() -> Vec<Case<'static>> {
    vec![
        (
            "a handler registered by a decorator",
            vec![
                ("main.py", "from reg import HANDLERS\nimport handlers\n\ndef f():\n    return HANDLERS['double'](2)\n"),
                ("reg.py", "HANDLERS = {}\ndef register(name):\n    def deco(fn):\n        HANDLERS[name] = fn\n        return fn\n    return deco\n"),
                ("handlers.py", "from reg import register\n\n@register('double')\ndef double(x):\n    return 2 * x\n"),
            ],
            ("handlers.py", "from reg import register\n\n@register('double')\ndef double(x):\n    return 3 * x\n"),
            true,
        ),
        (
            "a singledispatch implementation",
            vec![
                ("main.py", "from fmt import fmt\n\ndef f():\n    return fmt(2)\n"),
                ("fmt.py", "import functools\n@functools.singledispatch\ndef fmt(x):\n    return str(x)\n@fmt.register(int)\ndef _(x):\n    return 'int'\n"),
            ],
            ("fmt.py", "import functools\n@functools.singledispatch\ndef fmt(x):\n    return str(x)\n@fmt.register(int)\ndef _(x):\n    return 'INT'\n"),
            true,
        ),
        (
            "a subclass found through __subclasses__",
            vec![
                ("main.py", "from base import Base\nimport plugins\n\ndef f():\n    return [c().run() for c in Base.__subclasses__()]\n"),
                ("base.py", "class Base:\n    def run(self):\n        return 0\n"),
                ("plugins.py", "from base import Base\nclass P(Base):\n    def run(self):\n        return 1\n"),
            ],
            ("plugins.py", "from base import Base\nclass P(Base):\n    def run(self):\n        return 2\n"),
            true,
        ),
        (
            "an __init_subclass__ registry",
            vec![
                ("main.py", "from base import REGISTRY\nimport plugins\n\ndef f():\n    return REGISTRY['p']().run()\n"),
                ("base.py", "REGISTRY = {}\nclass Base:\n    def __init_subclass__(cls, key, **kw):\n        REGISTRY[key] = cls\n"),
                ("plugins.py", "from base import Base\nclass P(Base, key='p'):\n    def run(self):\n        return 1\n"),
            ],
            ("plugins.py", "from base import Base\nclass P(Base, key='p'):\n    def run(self):\n        return 2\n"),
            true,
        ),
        (
            "a registry filled by an assignment's method call",
            vec![
                ("main.py", "from reg import REG\n\ndef f():\n    return REG['x']()\n"),
                ("reg.py", "REG = {}\ndef one():\n    return 1\ndef two():\n    return 2\nh = REG.setdefault('x', one)\n"),
            ],
            ("reg.py", "REG = {}\ndef one():\n    return 1\ndef two():\n    return 2\nh = REG.setdefault('x', two)\n"),
            true,
        ),
        (
            "a stdlib decorator does not make a definition an effect",
            vec![
                ("main.py", "import functools\n\ndef f():\n    return 1\n\n@functools.lru_cache\ndef other():\n    return 2\n\n@property\ndef prop(self):\n    return 3\n"),
            ],
            ("main.py", "import functools\n\ndef f():\n    return 1\n\n@functools.lru_cache\ndef other():\n    return 5\n\n@property\ndef prop(self):\n    return 6\n"),
            false,
        ),
        (
            "a class with builtin or stdlib bases is not an effect",
            vec![
                ("main.py", "import enum\n\ndef f():\n    return 1\n\nclass E(Exception):\n    pass\n\nclass C(enum.Enum):\n    A = 1\n\nclass P:\n    @property\n    def x(self):\n        return 1\n    @x.setter\n    def x(self, v):\n        pass\n"),
            ],
            ("main.py", "import enum\n\ndef f():\n    return 1\n\nclass E(Exception):\n    x = 2\n\nclass C(enum.Enum):\n    A = 2\n\nclass P:\n    @property\n    def x(self):\n        return 2\n    @x.setter\n    def x(self, v):\n        pass\n"),
            false,
        ),
        (
            "a class with a plain project base only binds its name",
            vec![
                ("main.py", "from base import Base\n\ndef f():\n    return 1\n\nclass C(Base):\n    def m(self):\n        return 1\n"),
                ("base.py", "class Base:\n    def m(self):\n        return 0\n"),
            ],
            ("main.py", "from base import Base\n\ndef f():\n    return 1\n\nclass C(Base):\n    def m(self):\n        return 2\n"),
            false,
        ),
        (
            "a subclass of a class with a project metaclass",
            vec![
                ("main.py", "from base import REG\nimport plugins\n\ndef f():\n    return REG[-1]().run()\n"),
                ("base.py", "REG = []\nclass Meta(type):\n    def __init__(cls, *a):\n        REG.append(cls)\nclass Base(metaclass=Meta):\n    pass\nclass Mid(Base):\n    pass\n"),
                ("plugins.py", "import base\nclass P(base.Mid):\n    def run(self):\n        return 1\n"),
            ],
            ("plugins.py", "import base\nclass P(base.Mid):\n    def run(self):\n        return 2\n"),
            true,
        ),
        (
            "a project decorator that only sets attributes of what it decorates",
            vec![
                ("main.py", "from shapes import Other\n\ndef f():\n    return Other().x\n"),
                ("deco.py", "from functools import partial, wraps\nfrom typing import overload\n\n@overload\ndef auto(cls):\n    ...\n\ndef auto(cls=None, *, angular=None):\n    def do_replace(cls, angular=None):\n        def auto_repr(self):\n            return repr(self.__rich_repr__())\n        if not hasattr(cls, '__rich_repr__'):\n            auto_repr.__doc__ = 'x'\n            cls.__rich_repr__ = auto_repr\n        cls.__repr__ = auto_repr\n        if angular is not None:\n            cls.__rich_repr__.angular = angular\n        return cls\n    if cls is None:\n        return partial(do_replace, angular=angular)\n    return do_replace(cls, angular=angular)\n\ndef rich_repr(cls=None, *, angular=False):\n    if cls is None:\n        return auto(angular=angular)\n    return auto(cls)\n\ndef group(fit=True):\n    def decorator(method):\n        @wraps(method)\n        def _replace(*args, **kwargs):\n            return list(method(*args, **kwargs))\n        return _replace\n    return decorator\n"),
                ("shapes.py", "from deco import rich_repr, group\n\nclass Other:\n    x = 1\n\n@rich_repr()\nclass Seg:\n    def __rich_repr__(self):\n        yield 1\n\n@rich_repr\nclass Col:\n    def __rich_repr__(self):\n        yield 1\n\nclass T:\n    @group()\n    def render(self):\n        yield 1\n"),
            ],
            ("shapes.py", "from deco import rich_repr, group\n\nclass Other:\n    x = 1\n\n@rich_repr()\nclass Seg:\n    def __rich_repr__(self):\n        yield 2\n\n@rich_repr\nclass Col:\n    def __rich_repr__(self):\n        yield 2\n\nclass T:\n    @group()\n    def render(self):\n        yield 2\n"),
            false,
        ),
        (
            "a plain project decorator that appends to a registry",
            vec![
                ("main.py", "from plugins import REG\n\ndef f():\n    return sum(p() for p in REG)\n"),
                ("plugins.py", "REG = []\n\ndef plugin(fn):\n    REG.append(fn)\n    return fn\n\n@plugin\ndef one():\n    return 1\n"),
            ],
            ("plugins.py", "REG = []\n\ndef plugin(fn):\n    REG.append(fn)\n    return fn\n\n@plugin\ndef one():\n    return 2\n"),
            true,
        ),
        (
            "a decorator appending to a registry its class inherits",
            vec![
                ("main.py", "from plugins import Plugin\n\ndef f():\n    return [c.value for c in Plugin.registry]\n"),
                ("plugins.py", "class Plugin:\n    registry = []\n\ndef plugin(cls):\n    cls.registry.append(cls)\n    return cls\n\n@plugin\nclass One(Plugin):\n    value = 1\n"),
            ],
            ("plugins.py", "class Plugin:\n    registry = []\n\ndef plugin(cls):\n    cls.registry.append(cls)\n    return cls\n\n@plugin\nclass One(Plugin):\n    value = 2\n"),
            true,
        ),
        (
            "a decorator writing through an inherited attribute",
            vec![
                ("main.py", "from plugins import Base\n\ndef f():\n    return Base.meta.tag\n"),
                ("plugins.py", "class Meta:\n    tag = 0\n\nclass Base:\n    meta = Meta()\n\ndef tagged(n):\n    def deco(cls):\n        cls.meta.tag = n\n        return cls\n    return deco\n\n@tagged(1)\nclass One(Base):\n    pass\n"),
            ],
            ("plugins.py", "class Meta:\n    tag = 0\n\nclass Base:\n    meta = Meta()\n\ndef tagged(n):\n    def deco(cls):\n        cls.meta.tag = n\n        return cls\n    return deco\n\n@tagged(2)\nclass One(Base):\n    pass\n"),
            true,
        ),
        (
            "a decorator factory given a module-level dict",
            vec![
                ("main.py", "from reg import HANDLERS\nimport handlers\n\ndef f():\n    return HANDLERS['double'](2)\n"),
                ("reg.py", "HANDLERS = {}\ndef into(table):\n    def deco(fn):\n        table[fn.__name__] = fn\n        return fn\n    return deco\n"),
                ("handlers.py", "from reg import into, HANDLERS\n\n@into(HANDLERS)\ndef double(x):\n    return 2 * x\n"),
            ],
            ("handlers.py", "from reg import into, HANDLERS\n\n@into(HANDLERS)\ndef double(x):\n    return 3 * x\n"),
            true,
        ),
        (
            "a decorator that registers through a helper",
            vec![
                ("main.py", "from reg import REG\nimport handlers\n\ndef f():\n    return REG[0](2)\n"),
                ("reg.py", "REG = []\ndef _add(fn):\n    REG.append(fn)\ndef plugin(fn):\n    _add(fn)\n    return fn\n"),
                ("handlers.py", "from reg import plugin\n\n@plugin\ndef double(x):\n    return 2 * x\n"),
            ],
            ("handlers.py", "from reg import plugin\n\n@plugin\ndef double(x):\n    return 3 * x\n"),
            true,
        ),
        (
            "a decorator that calls what it decorates at import",
            vec![
                ("main.py", "from reg import STATE\nimport handlers\n\ndef f():\n    return list(STATE)\n"),
                ("reg.py", "STATE = []\ndef run_now(fn):\n    fn()\n    return fn\n"),
                ("handlers.py", "from reg import run_now, STATE\n\n@run_now\ndef setup():\n    STATE.append(1)\n"),
            ],
            ("handlers.py", "from reg import run_now, STATE\n\n@run_now\ndef setup():\n    STATE.append(2)\n"),
            true,
        ),
        (
            "a decorator that sets an attribute of a module",
            vec![
                ("main.py", "import registry\nimport handlers\n\ndef f():\n    return registry.double(2)\n"),
                ("registry.py", ""),
                ("expose.py", "import registry\ndef expose(fn):\n    setattr(registry, fn.__name__, fn)\n    return fn\n"),
                ("handlers.py", "from expose import expose\n\n@expose\ndef double(x):\n    return 2 * x\n"),
            ],
            ("handlers.py", "from expose import expose\n\n@expose\ndef double(x):\n    return 3 * x\n"),
            true,
        ),
        (
            "a decorator declaring a global",
            vec![
                ("main.py", "import reg\nimport handlers\n\ndef f():\n    return reg.LAST(2)\n"),
                ("reg.py", "LAST = None\ndef remember(fn):\n    global LAST\n    LAST = fn\n    return fn\n"),
                ("handlers.py", "from reg import remember\n\n@remember\ndef double(x):\n    return 2 * x\n"),
            ],
            ("handlers.py", "from reg import remember\n\n@remember\ndef double(x):\n    return 3 * x\n"),
            true,
        ),
        (
            "a decorator that hands a registering partial to map",
            vec![
                ("main.py", "from reg import REG\nimport handlers\n\ndef f():\n    return REG[0](2)\n"),
                ("reg.py", "from functools import partial\nREG = []\ndef plugin(fn):\n    def add(x):\n        REG.append(x)\n    list(map(partial(add), [fn]))\n    return fn\n"),
                ("handlers.py", "from reg import plugin\n\n@plugin\ndef double(x):\n    return 2 * x\n"),
            ],
            ("handlers.py", "from reg import plugin\n\n@plugin\ndef double(x):\n    return 3 * x\n"),
            true,
        ),
        (
            "a decorator that hands a project object to the standard library",
            vec![
                ("main.py", "from reg import BOX\nimport handlers\n\ndef f():\n    return BOX.items[0](2)\n"),
                ("reg.py", "import copy\nclass Box:\n    def __init__(self):\n        self.items = []\n        self.pending = None\n    def __copy__(self):\n        self.items.append(self.pending)\n        return self\nBOX = Box()\ndef plugin(fn):\n    copy.copy(BOX)\n    return fn\n"),
                ("handlers.py", "from reg import plugin, BOX\nBOX.pending = lambda x: 2 * x\n\n@plugin\ndef double(x):\n    return 2 * x\n"),
            ],
            ("handlers.py", "from reg import plugin, BOX\nBOX.pending = lambda x: 3 * x\n\n@plugin\ndef double(x):\n    return 2 * x\n"),
            true,
        ),
        (
            "other @cached functions of the module are not reached",
            vec![("main.py", "from casher import cached\n\n@cached\ndef f():\n    return 1\n\n@cached\ndef g():\n    return 2\n")],
            ("main.py", "from casher import cached\n\n@cached\ndef f():\n    return 1\n\n@cached\ndef g():\n    return 3\n"),
            false,
        ),
    ]
}

#[test]
fn definitions_that_act_at_import_are_reached() {
    let mut failures = Vec::new();
    for (name, files, (path, text), must_change) in effect_cases() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &files);
        let before = report(dir.path(), "f");
        write(dir.path(), &[(path, text)]);
        let after = report(dir.path(), "f");
        if (before.digest != after.digest) != must_change {
            failures.push(format!(
                "{name}: expected {}; definitions: {:?}",
                if must_change { "a change" } else { "no change" },
                before
                    .definitions
                    .iter()
                    .map(|d| &d.name)
                    .collect::<Vec<_>>(),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn deep_sources() -> Vec<(&'static str, String)> {
    vec![
        (
            "50k-term sum",
            format!("x = {}\n", vec!["1"; 50_000].join("+")),
        ),
        (
            "100k nested brackets",
            format!("x = {}1{}\n", "(".repeat(100_000), ")".repeat(100_000)),
        ),
        (
            "100k nested lists",
            format!("x = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        ),
        (
            "50k attribute chain",
            format!("x = a{}\n", ".b".repeat(50_000)),
        ),
        ("50k call chain", format!("x = f{}\n", "()".repeat(50_000))),
        ("50k unary minus", format!("x = {}1\n", "-".repeat(50_000))),
        (
            "20k power chain",
            format!("x = {}2\n", "2**".repeat(20_000)),
        ),
    ]
}

#[test]
fn deep_nesting_is_an_error_never_an_abort() {
    for (name, source) in deep_sources() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("deep.py", &source)]);
        // As the root file.
        let err = analyze(&dir.path().join("deep.py"), &AnalyzeOptions::default());
        match err {
            Err(AnalyzerError::TooDeep { line, .. }) => assert_eq!(line, 1, "{name}"),
            Err(AnalyzerError::Syntax { .. }) => {}
            other => panic!(
                "{name}: expected an error, got {:?}",
                other.map(|r| r.digest)
            ),
        }
        // As a dependency: a per-file error in the report.
        write(
            dir.path(),
            &[("main.py", "import deep\n\ndef f():\n    return deep.x\n")],
        );
        let r = report(dir.path(), "f");
        assert!(
            r.errors.iter().any(|e| e.contains("deep.py:1")),
            "{name}: {:?}",
            r.errors
        );
    }
}

#[test]
fn moderate_nesting_still_analyzes() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "x = {}\ny = a{}\n",
        vec!["1"; 2_000].join("+"),
        ".b".repeat(2_000)
    );
    write(dir.path(), &[("main.py", &source)]);
    analyze(&dir.path().join("main.py"), &AnalyzeOptions::default()).unwrap();
}

#[test]
fn a_fifo_is_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("x.py");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    match analyze(&fifo, &AnalyzeOptions::default()) {
        Err(AnalyzerError::NotRegularFile { path }) => assert_eq!(path, fifo),
        other => panic!("{:?}", other.map(|r| r.digest)),
    }
    // Imported by a module: a per-file error, no hang.
    write(
        dir.path(),
        &[("main.py", "import x\n\ndef f():\n    return x.y\n")],
    );
    let r = report(dir.path(), "f");
    assert!(
        r.errors.iter().any(|e| e.contains("not a regular file")),
        "{:?}",
        r.errors
    );
}

#[test]
fn a_star_import_is_followed_by_name() {
    let files = [
        ("main.py", "from pkg import other\n\ndef f():\n    return other()\n"),
        ("pkg/__init__.py", "from .a import *\nfrom .b import *\nfrom .c import *\n"),
        ("pkg/a.py", "__all__ = ['fit']\ndef fit(x):\n    return x\ndef other():\n    return 'not exported'\n"),
        ("pkg/b.py", "def other():\n    return 2\ndef _private():\n    return 0\n"),
        ("pkg/c.py", "import sys\n__all__ = ['x'] + list(sys.argv[:0])\nx = 1\n"),
    ];
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &files);
    let before = report(dir.path(), "f");
    // `other` comes from b (not in a's `__all__`); c's `__all__` is not a
    // literal, so c counts whole; a does not.
    let whole: Vec<&str> = before.fallbacks.iter().map(|f| f.module.as_str()).collect();
    assert!(
        whole.contains(&"pkg.c") && !whole.contains(&"pkg.a") && !whole.contains(&"pkg.b"),
        "{whole:?}"
    );
    for (path, text, must_change) in [
        ("pkg/a.py", "__all__ = ['fit']\ndef fit(x):\n    return x + 1\ndef other():\n    return 'still not exported'\n", false),
        ("pkg/b.py", "def other():\n    return 2\ndef _private():\n    return 5\n", false),
        ("pkg/b.py", "def other():\n    return 3\ndef _private():\n    return 5\n", true),
    ] {
        let digest = report(dir.path(), "f").digest;
        write(dir.path(), &[(path, text)]);
        let after = report(dir.path(), "f").digest;
        assert_eq!(digest != after, must_change, "{path}: {text}");
    }
}

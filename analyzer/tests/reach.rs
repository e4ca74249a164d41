//! Function-level reachability: which edits change a function's code
//! identity. Each case writes a small project, takes the digest of `f` in
//! `main.py`, applies one edit, and says whether the digest must change.

use std::path::Path;

use casher_analyzer::{analyze, AnalyzeOptions, DepsReport};

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn report(root: &Path) -> DepsReport {
    let options = AnalyzeOptions {
        function: Some("f".into()),
        ..AnalyzeOptions::default()
    };
    analyze(&root.join("main.py"), &options).unwrap()
}

/// (case, files, edit (path, new text), must the digest change?)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, (&'a str, &'a str), bool);

fn cases() -> Vec<Case<'static>> {
    vec![
        (
            "unrelated function in the same module",
            vec![("main.py", "def helper():\n    return 1\n\ndef other():\n    return 2\n\ndef f():\n    return helper()\n")],
            ("main.py", "def helper():\n    return 1\n\ndef other():\n    return 3\n\ndef f():\n    return helper()\n"),
            false,
        ),
        (
            "unrelated code inserted before",
            vec![("main.py", "def helper():\n    return 1\n\ndef f():\n    return helper()\n")],
            ("main.py", "def new_thing():\n    return 0\n\ndef helper():\n    return 1\n\ndef f():\n    return helper()\n"),
            false,
        ),
        (
            "helper two modules away",
            vec![
                ("main.py", "from a import g\n\ndef f():\n    return g()\n"),
                ("a.py", "from b import h\n\ndef g():\n    return h()\n"),
                ("b.py", "def h():\n    return 1\n\ndef unused():\n    return 0\n"),
            ],
            ("b.py", "def h():\n    return 2\n\ndef unused():\n    return 0\n"),
            true,
        ),
        (
            "unused function two modules away",
            vec![
                ("main.py", "from a import g\n\ndef f():\n    return g()\n"),
                ("a.py", "from b import h\n\ndef g():\n    return h()\n"),
                ("b.py", "def h():\n    return 1\n\ndef unused():\n    return 0\n"),
            ],
            ("b.py", "def h():\n    return 1\n\ndef unused():\n    return 5\n"),
            false,
        ),
        (
            "constant through a default argument",
            vec![("main.py", "LIMIT = 10\n\ndef f(x=LIMIT):\n    return x\n")],
            ("main.py", "LIMIT = 11\n\ndef f(x=LIMIT):\n    return x\n"),
            true,
        ),
        (
            "decorator defined elsewhere",
            vec![
                ("main.py", "from deco import wrap\n\n@wrap\ndef f():\n    return 1\n"),
                ("deco.py", "def wrap(fn):\n    return fn\n"),
            ],
            ("deco.py", "def wrap(fn):\n    return lambda: 2\n"),
            true,
        ),
        (
            "method called through self",
            vec![
                ("main.py", "from util import helper\n\nclass C:\n    def m(self):\n        return helper()\n\ndef f():\n    return C().m()\n"),
                ("util.py", "def helper():\n    return 1\n"),
            ],
            ("util.py", "def helper():\n    return 2\n"),
            true,
        ),
        (
            "registry populated at import time",
            vec![
                ("main.py", "import plugins\nfrom reg import REGISTRY\n\ndef f():\n    return REGISTRY['a']()\n"),
                ("reg.py", "REGISTRY = {}\n"),
                ("plugins.py", "from reg import REGISTRY\n\ndef impl_a():\n    return 1\n\nREGISTRY['a'] = impl_a\n"),
            ],
            ("plugins.py", "from reg import REGISTRY\n\ndef impl_a():\n    return 2\n\nREGISTRY['a'] = impl_a\n"),
            true,
        ),
        (
            "monkey-patching from another module",
            vec![
                ("main.py", "import patcher\nimport target\n\ndef f():\n    return target.helper()\n"),
                ("target.py", "def helper():\n    return 1\n"),
                ("patcher.py", "import target\n\ntarget.helper = lambda: 2\n"),
            ],
            ("patcher.py", "import target\n\ntarget.helper = lambda: 3\n"),
            true,
        ),
        (
            "closure calling a global",
            vec![("main.py", "def helper():\n    return 1\n\ndef f():\n    def inner():\n        return helper()\n    return inner()\n")],
            ("main.py", "def helper():\n    return 2\n\ndef f():\n    def inner():\n        return helper()\n    return inner()\n"),
            true,
        ),
        (
            "recursion across modules",
            vec![
                ("main.py", "from a import g\n\ndef f():\n    return g(3)\n"),
                ("a.py", "def g(n):\n    from b import h\n    return h(n - 1) if n else 0\n"),
                ("b.py", "def h(n):\n    from a import g\n    return g(n)\n"),
            ],
            ("b.py", "def h(n):\n    from a import g\n    return g(n) + 1\n"),
            true,
        ),
        (
            "re-export through __init__",
            vec![
                ("main.py", "from pkg import thing\n\ndef f():\n    return thing()\n"),
                ("pkg/__init__.py", "from .impl import thing\n"),
                ("pkg/impl.py", "def thing():\n    return 1\n\ndef other():\n    return 0\n"),
            ],
            ("pkg/impl.py", "def thing():\n    return 2\n\ndef other():\n    return 0\n"),
            true,
        ),
        (
            "re-export, unrelated sibling",
            vec![
                ("main.py", "from pkg import thing\n\ndef f():\n    return thing()\n"),
                ("pkg/__init__.py", "from .impl import thing\n"),
                ("pkg/impl.py", "def thing():\n    return 1\n\ndef other():\n    return 0\n"),
            ],
            ("pkg/impl.py", "def thing():\n    return 1\n\ndef other():\n    return 9\n"),
            false,
        ),
        (
            "module alias and attribute",
            vec![
                ("main.py", "import helpers as h\n\ndef f():\n    return h.one()\n"),
                ("helpers.py", "def one():\n    return 1\n\ndef two():\n    return 2\n"),
            ],
            ("helpers.py", "def one():\n    return 1\n\ndef two():\n    return 22\n"),
            false,
        ),
        (
            "module alias, reached function edited",
            vec![
                ("main.py", "import helpers as h\n\ndef f():\n    return h.one()\n"),
                ("helpers.py", "def one():\n    return 1\n\ndef two():\n    return 2\n"),
            ],
            ("helpers.py", "def one():\n    return 11\n\ndef two():\n    return 2\n"),
            true,
        ),
        (
            "name alias",
            vec![
                ("main.py", "from helpers import one as uno\n\ndef f():\n    return uno()\n"),
                ("helpers.py", "def one():\n    return 1\n"),
            ],
            ("helpers.py", "def one():\n    return 3\n"),
            true,
        ),
        (
            "globals() falls back to the whole module",
            vec![("main.py", "def other():\n    return 2\n\ndef f():\n    return globals()['other']()\n")],
            ("main.py", "def other():\n    return 3\n\ndef f():\n    return globals()['other']()\n"),
            true,
        ),
        (
            // A star import binds its source's public names: the name is
            // followed into the source, whose other functions do not count.
            "star import: an unrelated function of the source",
            vec![
                ("main.py", "from stars import *\n\ndef f():\n    return mystery()\n"),
                ("stars.py", "def mystery():\n    return 1\n\ndef unrelated():\n    return 0\n"),
            ],
            ("stars.py", "def mystery():\n    return 1\n\ndef unrelated():\n    return 4\n"),
            false,
        ),
        (
            "star import: the function the name comes from",
            vec![
                ("main.py", "from stars import *\n\ndef f():\n    return mystery()\n"),
                ("stars.py", "def mystery():\n    return 1\n\ndef unrelated():\n    return 0\n"),
            ],
            ("stars.py", "def mystery():\n    return 2\n\ndef unrelated():\n    return 0\n"),
            true,
        ),
        (
            "reformatting never counts",
            vec![
                ("main.py", "from a import g\n\ndef f():\n    return g()\n"),
                ("a.py", "def g():\n    return (1 + 2)\n"),
            ],
            ("a.py", "def g():\n    '''Doc.'''\n    # comment\n    return 1 + 2\n"),
            false,
        ),
    ]
}

#[test]
fn edits_change_the_digest_exactly_when_reachable() {
    let mut failures = Vec::new();
    for (name, files, (path, text), must_change) in cases() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &files);
        let before = report(dir.path());
        write(dir.path(), &[(path, text)]);
        let after = report(dir.path());
        if (before.digest != after.digest) != must_change {
            failures.push(format!(
                "{name}: expected {}; definitions: {:?}; fallbacks: {:?}",
                if must_change { "a change" } else { "no change" },
                before
                    .definitions
                    .iter()
                    .map(|d| &d.name)
                    .collect::<Vec<_>>(),
                before.fallbacks
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fallbacks_are_named_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("main.py", "def f():\n    return eval('1')\n"),
            ("lazy.py", "def __getattr__(name):\n    return 1\n"),
        ],
    );
    let r = report(dir.path());
    assert!(
        r.fallbacks
            .iter()
            .any(|fb| fb.module == "main" && fb.reason.contains("eval")),
        "{:?}",
        r.fallbacks
    );
    let d = r
        .definitions
        .iter()
        .find(|d| d.name == "main.f")
        .expect("f itself is listed");
    assert_eq!(d.line, 1);
    assert_eq!(d.reason, "used by the cached call");
}

#[test]
fn indexed_runs_give_the_same_identity_as_fresh_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("main.py", "from a import g\n\ndef f():\n    return g()\n"),
            ("a.py", "def g():\n    return 1\n"),
        ],
    );
    let options = AnalyzeOptions {
        function: Some("f".into()),
        cache_dir: Some(cache.path().to_path_buf()),
        ..AnalyzeOptions::default()
    };
    let fresh = analyze(&dir.path().join("main.py"), &options).unwrap();
    let indexed = analyze(&dir.path().join("main.py"), &options).unwrap();
    assert_eq!(indexed.stats.parsed, 0);
    assert_eq!(fresh.digest, indexed.digest);
    assert_eq!(fresh.definitions.len(), indexed.definitions.len());
    assert!(indexed.definitions.iter().any(|d| d.name == "a.g"));
}

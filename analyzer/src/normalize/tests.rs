//! Must-equal and must-differ pairs for the normalized hash.

use super::module_hash;

fn hash(source: &str) -> blake3::Hash {
    let parsed = ruff_python_parser::parse_module(source)
        .unwrap_or_else(|e| panic!("fixture does not parse: {e}\n{source}"));
    module_hash(&parsed.syntax().body)
}

const EQUAL: &[(&str, &str)] = &[
    ("x = 1\n", "x = 1  # a comment\n"),
    ("x = 1\n", "\n\nx   =   1\n\n"),
    ("s = 'a'\n", "s = \"a\"\n"),
    ("s = u'a'\n", "s = 'a'\n"),
    ("y = (1 + 2)\n", "y = 1 + 2\n"),
    ("f(a, b)\n", "f(a, b,)\n"),
    ("f(\n    a,\n    b,\n)\n", "f(a, b)\n"),
    ("s = 'ab' 'cd'\n", "s = 'abcd'\n"),
    ("class C():\n    pass\n", "class C:\n    pass\n"),
    ("del (a, b)\n", "del a, b\n"),
    ("del [a, b]\n", "del a, b\n"),
    (
        "def f():\n    '''Doc.'''\n    return 1\n",
        "def f():\n    return 1\n",
    ),
    ("'''Module doc.'''\nx = 1\n", "x = 1\n"),
    ("class C:\n    'doc'\n    x = 1\n", "class C:\n    x = 1\n"),
    ("x = 0x10\n", "x = 16\n"),
    ("x = 1_000\n", "x = 1000\n"),
    ("x = 1.0\n", "x = 1.\n"),
    ("s = f'a{x}' 'b'\n", "s = f'a{x}b'\n"),
    ("s = f'abc'\n", "s = 'abc'\n"),
    ("x = [\n  1,\n  2,\n]\n", "x = [1, 2]\n"),
    ("def f(a, b):\n  return a\n", "def f(a, b):\n    return a\n"),
    ("x = 1\r\ny = 2\r\n", "x = 1\ny = 2\n"),
    ("g((x for x in y))\n", "g(x for x in y)\n"),
    ("a, b = 1, 2\n", "(a, b) = (1, 2)\n"),
    (
        "if x:\n    pass\nelse:\n    pass\n",
        "if (x):\n    pass\nelse:\n    pass\n",
    ),
];

const DIFFERENT: &[(&str, &str)] = &[
    ("x = 1\n", "x = 2\n"),
    ("def f(a: int): pass\n", "def f(a): pass\n"),
    ("def f(a: int): pass\n", "def f(a: str): pass\n"),
    ("def f() -> int: pass\n", "def f(): pass\n"),
    ("def f(a=1): pass\n", "def f(a=2): pass\n"),
    ("def f(a=1): pass\n", "def f(a): pass\n"),
    ("@d\ndef f(): pass\n", "def f(): pass\n"),
    ("@d1\ndef f(): pass\n", "@d2\ndef f(): pass\n"),
    ("x = (a,)\n", "x = (a)\n"),
    ("y = x[a,]\n", "y = x[a]\n"),
    ("x = -0.0\n", "x = 0.0\n"),
    ("x = b'a'\n", "x = 'a'\n"),
    ("s = f'{x=}'\n", "s = f'{x = }'\n"),
    ("from __future__ import annotations\nx = 1\n", "x = 1\n"),
    ("x = 1\ny = 2\n", "y = 2\nx = 1\n"),
    ("def f(): return 1\n", "async def f(): return 1\n"),
    ("x = a and b\n", "x = a or b\n"),
    ("x = a < b\n", "x = a <= b\n"),
    ("x = f(a, b)\n", "x = f(b, a)\n"),
    ("x = f(a=1)\n", "x = f(b=1)\n"),
    ("x = 1\n", "x: int = 1\n"),
    ("def f(a, /, b): pass\n", "def f(a, b): pass\n"),
    ("def f(*, a): pass\n", "def f(a): pass\n"),
    ("s = f'{x!r}'\n", "s = f'{x}'\n"),
    ("s = f'{x:>3}'\n", "s = f'{x:<3}'\n"),
    ("x = 1j\n", "x = 1.0\n"),
    ("x = 1\n", "x = 1.0\n"),
    ("x = 1\n", "x = True\n"),
    ("def f():\n    'doc'\n", "def f():\n    pass\n"),
    ("x = [a for a in b]\n", "x = {a for a in b}\n"),
    (
        "try:\n    a\nexcept E:\n    b\n",
        "try:\n    a\nexcept* E:\n    b\n",
    ),
    ("class C(A): pass\n", "class C(B): pass\n"),
    ("class C(A, B): pass\n", "class C(B, A): pass\n"),
    ("import a\n", "import b\n"),
    ("from . import a\n", "from .. import a\n"),
    ("x = 'a'\n'doc'\n", "x = 'a'\n"),
    ("s = 'a\\n'\n", "s = 'a\\\\n'\n"),
    ("x = 18446744073709551616\n", "x = 18446744073709551617\n"),
    (
        "match x:\n    case 1: pass\n",
        "match x:\n    case 2: pass\n",
    ),
    ("global a\n", "nonlocal a\n"),
];

#[test]
fn equal_pairs_hash_equal() {
    for (a, b) in EQUAL {
        assert_eq!(hash(a), hash(b), "should hash equal:\n{a}\n---\n{b}");
    }
}

#[test]
fn different_pairs_hash_different() {
    for (a, b) in DIFFERENT {
        assert_ne!(hash(a), hash(b), "should hash differently:\n{a}\n---\n{b}");
    }
}

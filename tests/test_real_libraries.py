"""`@cached` on real code: three pure-Python libraries from PyPI sdists
(boltons, toolz, more-itertools; pinned) copied into a project as local code,
a dozen of their functions wrapped with `@cached`, every run in a fresh
interpreter.

- the second run is all hits;
- after `black` on the libraries, after a comment line at the top of every
  module, after adding an unused function to every module: still all hits;
- after a logic edit of one helper: exactly the wrappers that reach it miss;
- every result equals a plain call (the same calls, without casher, in a
  fresh interpreter on the same copy).

The sdists are fetched once with `pip download` into tests/.sdists (or
$CASHER_TEST_SDISTS) and reused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

LIBRARIES = {
    # distribution==version: the package directory inside the sdist
    "boltons==24.1.0": "boltons-24.1.0/boltons",
    "toolz==1.0.0": "toolz-1.0.0/toolz",
    "more-itertools==10.5.0": "more-itertools-10.5.0/more_itertools",
}

# name -> the expression a wrapper returns.
CALLS = {
    "slugify": "strutils.slugify('Hello, World! Cached value')",
    "camel2under": "strutils.camel2under('CachedFunctionIdentity')",
    "bytes2human": "strutils.bytes2human(123456789)",
    "chunked": "iterutils.chunked(list(range(10)), 3)",
    "unique": "iterutils.unique([3, 1, 3, 2, 1])",
    "frequencies": "toolz.frequencies('abracadabra')",
    "partition_all": "list(toolz.partition_all(3, range(8)))",
    "merge_with": "toolz.merge_with(sum, {'a': 1}, {'a': 2, 'b': 3})",
    "sliding_window": "list(toolz.sliding_window(2, [1, 2, 3, 4]))",
    "windowed": "list(more_itertools.windowed(range(6), 3))",
    "distinct_permutations": "sorted(more_itertools.distinct_permutations([1, 1, 2]))",
    "collapse": "list(more_itertools.collapse([1, [2, [3, 4]], 5]))",
}

# The helper edited in the last step, and the wrappers that reach it
# (read from the library source: only `slugify` calls `split_punct_ws`).
HELPER_FILE = "boltons/strutils.py"
HELPER_BEFORE = "return [w for w in _punct_re.split(text) if w]"
HELPER_AFTER = "return [w for w in _punct_re.split(text) if len(w) > 0]"
REACHING_THE_HELPER = {"slugify"}

IMPORTS = "from boltons import strutils, iterutils\nimport toolz\nimport more_itertools\n"


def sdist_cache() -> Path:
    return Path(os.environ.get("CASHER_TEST_SDISTS", ROOT / "tests" / ".sdists"))


def fetch(requirement: str) -> Path:
    """The sdist of `requirement`, downloaded once."""
    cache = sdist_cache()
    name, version = requirement.split("==")
    for candidate in cache.glob("*.tar.gz"):
        stem = candidate.name[: -len(".tar.gz")].lower().replace("_", "-")
        if stem == f"{name.lower()}-{version}":
            return candidate
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--no-binary", ":all:", "--no-deps", requirement, "-d", str(cache)],
        check=True,
        timeout=900,
    )
    return fetch(requirement)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three packages, extracted from their sdists."""
    out = tmp_path_factory.mktemp("sdists")
    for requirement, inner in LIBRARIES.items():
        with tarfile.open(fetch(requirement)) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(inner + "/") and m.isfile()]
            tar.extractall(out, members=members, filter="data")
        shutil.move(str(out / inner), str(out / Path(inner).name))
    return out


def project(root: Path, sources: Path) -> Path:
    for package in ("boltons", "toolz", "more_itertools"):
        shutil.copytree(sources / package, root / package, ignore=shutil.ignore_patterns("tests"))
    body = "".join(f"\n\n@cached\ndef {n}():\n    return {e}\n" for n, e in CALLS.items())
    (root / "wrappers.py").write_text("from casher import cached\n" + IMPORTS + body)
    (root / "plain.py").write_text(
        IMPORTS + "".join(f"\n\ndef {n}():\n    return {e}\n" for n, e in CALLS.items())
    )
    (root / "run.py").write_text(
        textwrap.dedent(
            """
            import json, sys
            which = sys.argv[1]
            mod = __import__(which)
            out = {}
            for name in %r:
                fn = getattr(mod, name)
                value = fn()
                entry = {"value": repr(value)}
                if which == "wrappers":
                    info = fn.cache_info()
                    entry["hit"] = (info.hits if hasattr(info, "hits") else info["hits"]) == 1
                out[name] = entry
            print("RESULT " + json.dumps(out))
            """
            % (list(CALLS),)
        )
    )
    return root


def run(root: Path, which: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "run.py", which], cwd=root, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def check(root: Path, expect_misses: set[str]) -> None:
    """One cached run in a fresh interpreter: exactly `expect_misses` miss,
    and every value equals a plain call's."""
    cached = run(root, "wrappers")
    plain = run(root, "plain")
    assert {n: e["value"] for n, e in cached.items()} == {n: e["value"] for n, e in plain.items()}
    misses = {n for n, e in cached.items() if not e["hit"]}
    assert misses == expect_misses


def modules(root: Path) -> list[Path]:
    return sorted(p for package in ("boltons", "toolz", "more_itertools") for p in (root / package).rglob("*.py"))


def test_real_libraries_hit_exactly_when_nothing_they_reach_changed(
    sources: Path, tmp_path: Path, cache_dir: Path
) -> None:
    root = project(tmp_path / "project", sources)
    check(root, set(CALLS))  # first run: all miss
    check(root, set())  # second run: all hit

    # black on the libraries: a reformat, never a miss.
    before = {p: p.read_bytes() for p in modules(root)}
    subprocess.run(
        [sys.executable, "-m", "black", "--quiet", "--line-length", "70", *(str(root / p) for p in ("boltons", "toolz", "more_itertools"))],
        check=True,
    )
    changed = [p for p in modules(root) if p.read_bytes() != before[p]]
    assert len(changed) > 10, "black should have reformatted the libraries"
    check(root, set())

    # A comment line at the top of every module.
    for p in modules(root):
        p.write_text("# an added comment line\n" + p.read_text())
    check(root, set())

    # An unused function added to every module.
    for p in modules(root):
        p.write_text(p.read_text() + "\n\ndef _casher_unused_function():\n    return 1\n")
    check(root, set())

    # A logic edit of one helper: exactly the wrappers that reach it miss.
    helper = root / HELPER_FILE
    text = helper.read_text()
    assert HELPER_BEFORE in text
    helper.write_text(text.replace(HELPER_BEFORE, HELPER_AFTER))
    check(root, REACHING_THE_HELPER)
    check(root, set())


SMALL = {
    "pkg/__init__.py": "from .a import *\nfrom .b import *\nimport os\nif os.sep:\n    fit = fit.__wrapped__\n",
    "pkg/a.py": "import functools\n__all__ = ['fit']\n@functools.lru_cache\ndef fit(x):\n    return x + 1\n",
    "pkg/b.py": "__all__ = ['other']\ndef other():\n    return 2\n",
    "lib.py": textwrap.dedent(
        """
        import logging
        logger = logging.getLogger(__name__)
        logger.setLevel(logging.INFO)
        _REGISTRY = []
        _REGISTRY.append(1)
        tmp = 3
        del tmp
        SCALE = 2
        SCALE = SCALE * 3

        def helper(x):
            return x * SCALE + len(_REGISTRY)

        def unused():
            return 0
        """
    ),
    "wrappers.py": textwrap.dedent(
        """
        from casher import cached
        from lib import helper
        from pkg import fit, other

        @cached
        def scaled(x):
            return helper(x)

        @cached
        def fitted(x):
            return fit(x) + other()
        """
    ),
    "plain.py": "from lib import helper\nfrom pkg import fit, other\n\ndef scaled(x):\n    return helper(x)\n\ndef fitted(x):\n    return fit(x) + other()\n",
    "run.py": textwrap.dedent(
        """
        import json, sys
        mod = __import__(sys.argv[1])
        out = {}
        for name in ("scaled", "fitted"):
            fn = getattr(mod, name)
            entry = {"value": repr(fn(5))}
            if sys.argv[1] == "wrappers":
                info = fn.cache_info()
                entry["hit"] = (info.hits if hasattr(info, "hits") else info["hits"]) == 1
            out[name] = entry
        print("RESULT " + json.dumps(out))
        """
    ),
}


def test_names_bound_twice_and_statements_binding_nothing(tmp_path: Path, cache_dir: Path) -> None:
    """`SCALE = 2` then `SCALE = SCALE * 3`, two star imports in a package
    `__init__`, `fit = fit.__wrapped__` in an `if`: the function hits on
    the next run. `del x`, `logger.setLevel(...)`, `_REGISTRY.append(...)`
    are named by content: a comment line or a line added to an unused
    function changes nothing; editing one of them is a miss."""
    for name, text in SMALL.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    check(tmp_path, {"scaled", "fitted"})
    check(tmp_path, set())
    lib = tmp_path / "lib.py"
    lib.write_text("# a comment\n" + lib.read_text().replace("    return 0", "    y = 1\n    return y - 1"))
    check(tmp_path, set())
    lib.write_text(lib.read_text().replace("SCALE = SCALE * 3", "SCALE = SCALE * 4"))
    check(tmp_path, {"scaled"})
    # A statement that runs when `lib` is imported changed: every function
    # of a module importing `lib` may see it.
    lib.write_text(lib.read_text().replace("_REGISTRY.append(1)", "_REGISTRY.append(2)\n_REGISTRY.append(3)"))
    check(tmp_path, {"scaled", "fitted"})
    (tmp_path / "pkg" / "b.py").write_text("__all__ = ['other']\ndef other():\n    return 3\n")
    check(tmp_path, {"fitted"})

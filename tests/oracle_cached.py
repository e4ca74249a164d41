"""Differential oracle for `@cached`: the same driver run plainly and cached.

A hit promises that calling the function now would return, print and write
exactly what a plain call does. So every step of a scenario runs the driver
twice on the same project tree, at the same absolute path, each time in a
fresh interpreter:

1. plainly: a stand-in `casher` package (whose `cached` returns the function
   unchanged) is put first on `PYTHONPATH`, so the project's own
   `from casher import cached` gets the identity decorator;
2. the tree is put back exactly as it was before the plain run (files the
   plain run wrote are removed, files it changed get their old bytes back;
   untouched files are not rewritten, so their stat stamps stay);
3. cached: the real, installed `casher` (found next to this interpreter, as
   tests/conftest.py finds the `casher` command), one `CASHER_DIR` shared by
   all steps of the scenario.

Compared: exit status, stdout, stderr (minus casher's own log lines, which
`CASHER_LOG=warning` prefixes with `casher: `), and the tree after the run
(every file's bytes; `__pycache__` left out). Mutations happen between steps,
on the one tree, so both runs of a step see identical inputs.

Hits and misses come from the driver itself: it ends with
`_oracle.done(f, g, ...)`, which writes each cached function's `cache_info()`
(a dict today, a named tuple later: both are read) to a file outside the tree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = sys.executable

# casher's own stderr: its logger's lines (`casher: ...` with CASHER_LOG set;
# `casher|LEVEL|...` through a caller's handler formatted `%(name)s|...`) and
# the Rust side's `tracing` lines.
CASHER_LINE = re.compile(r"^(casher[:| ]|\s*(TRACE|DEBUG|INFO|WARN|ERROR) )")
# a `warnings.warn` raised from inside the casher package (`.../casher/x.py:12:
# SomeWarning: ...`), followed by the indented source line Python shows
CASHER_WARNING = re.compile(r"^\S*[/\\]casher[/\\][\w/\\]+\.py:\d+: \w*Warning: ")

SHIM = '''\
"""Stand-in for casher in plain runs: `cached` is the identity."""


class CasherError(Exception):
    pass


def cached(func=None, **options):
    if func is None:
        return lambda f: f
    return func
'''

ORACLE_RT = '''\
"""Written by the test oracle: report each cached function's hits/misses."""
import json
import os


def _get(info, name):
    return info[name] if isinstance(info, dict) else getattr(info, name)


def done(*funcs):
    path = os.environ.get("ORACLE_INFO")
    if not path:
        return
    out = {}
    for f in funcs:
        cache_info = getattr(f, "cache_info", None)
        if cache_info is None:
            continue
        info = cache_info()
        out[f.__name__] = {"hits": _get(info, "hits"), "misses": _get(info, "misses")}
    with open(path, "w") as fh:
        json.dump(out, fh)
'''


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    tree: dict[str, bytes]
    casher_lines: list[str] = field(default_factory=list)


@dataclass
class Step:
    label: str
    plain: Run
    cached: Run
    info: dict | None

    @property
    def diffs(self) -> list[str]:
        out = []
        for what in ("code", "stdout", "stderr"):
            a, b = getattr(self.plain, what), getattr(self.cached, what)
            if a != b:
                out.append(f"{what}: plain {a!r} != cached {b!r}")
        for path in sorted(set(self.plain.tree) | set(self.cached.tree)):
            a, b = self.plain.tree.get(path), self.cached.tree.get(path)
            if a != b:
                out.append(f"file {path}: plain {_short(a)} != cached {_short(b)}")
        return out

    def hits(self, name: str) -> int | None:
        return (self.info or {}).get(name, {}).get("hits")

    def misses(self, name: str) -> int | None:
        return (self.info or {}).get(name, {}).get("misses")

    def report(self) -> str:
        lines = [f"step {self.label!r}: hits/misses {self.info}"]
        lines += ["  " + d for d in self.diffs] or ["  (plain and cached agree)"]
        if self.cached.code != self.plain.code:
            lines += [
                "  cached stderr ends: " + line
                for line in self.cached.stderr.splitlines()[-3:]
            ]
        lines += ["  casher said: " + line for line in self.cached.casher_lines[-12:]]
        return "\n".join(lines)


def _short(data: bytes | None) -> str:
    if data is None:
        return "<absent>"
    return repr(data[:200]) + ("..." if len(data) > 200 else "")


def _snapshot(root: Path) -> dict[str, bytes]:
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            path = Path(dirpath) / name
            tree[str(path.relative_to(root))] = path.read_bytes()
    return tree


class Oracle:
    """One scenario: a project tree in `base/proj`, its cache in `base/cache`."""

    def __init__(self, base: Path, env: dict[str, str] | None = None) -> None:
        self.base = base.resolve()
        self.root = self.base / "proj"
        self.root.mkdir(parents=True)
        self.cache = self.base / "cache"
        self.shim = self.base / "shim"
        (self.shim / "casher").mkdir(parents=True)
        (self.shim / "casher" / "__init__.py").write_text(SHIM)
        self.info_file = self.base / "info.json"
        self.env = dict(env or {})
        self.steps: list[Step] = []
        self.write("_oracle.py", ORACLE_RT)

    # -- the tree -----------------------------------------------------------

    def write(self, relative: str, source: str | bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            path.write_bytes(source)
        else:
            path.write_text(textwrap.dedent(source).lstrip("\n"))
        return path

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.root / relative
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} must occur once in {relative}"
        path.write_text(text.replace(old, new))

    def _restore(self, before: dict[str, bytes]) -> None:
        now = _snapshot(self.root)
        for relative in now.keys() - before.keys():
            (self.root / relative).unlink()
        for relative, data in before.items():
            if now.get(relative) != data:
                path = self.root / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

    # -- running ------------------------------------------------------------

    def _environ(self, plain: bool, extra: dict[str, str]) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CASHER", "PYTEST", "ORACLE"))
        }
        env.pop("PYTHONPATH", None)
        env.update(self.env)
        env.update(extra)
        if plain:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.shim), env.get("PYTHONPATH")) if p
            )
            # the plain run leaves no trace the cached run could observe
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env["CASHER_DIR"] = str(self.cache)
            # ORACLE_CASHER_LOG=debug shows casher's hit/miss reasons in a failure's report
            env["CASHER_LOG"] = env.get(
                "CASHER_LOG", os.environ.get("ORACLE_CASHER_LOG", "warning")
            )
            env["CASHER_CHECK_REACH"] = "1"
            env["ORACLE_INFO"] = str(self.info_file)
        return env

    def _once(
        self, argv: list[str], cwd: Path, env: dict[str, str], stdin: str | None
    ) -> Run:
        proc = subprocess.run(
            [PYTHON, *argv],
            check=False,
            cwd=cwd,
            env=env,
            input=stdin or "",
            capture_output=True,
            text=True,
            timeout=180,
        )
        kept, casher = [], []
        after_warning = False
        for line in proc.stderr.splitlines(keepends=True):
            ours = (
                CASHER_LINE.match(line)
                or CASHER_WARNING.match(line)
                or (after_warning and line[:1].isspace())
            )
            after_warning = bool(CASHER_WARNING.match(line))
            (casher if ours else kept).append(line)
        return Run(
            proc.returncode,
            proc.stdout,
            "".join(kept),
            _snapshot(self.root),
            [c.rstrip() for c in casher],
        )

    def run(
        self,
        *argv: str,
        cwd: str = ".",
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        label: str | None = None,
    ) -> Step:
        """One step: plain run, tree put back, cached run; returns both."""
        argv_list = list(argv) or ["driver.py"]
        where = (self.root / cwd).resolve()
        before = _snapshot(self.root)
        plain = self._once(argv_list, where, self._environ(True, env or {}), stdin)
        self._restore(before)
        self.info_file.unlink(missing_ok=True)
        cached = self._once(argv_list, where, self._environ(False, env or {}), stdin)
        info = (
            json.loads(self.info_file.read_text()) if self.info_file.exists() else None
        )
        step = Step(
            label or f"#{len(self.steps) + 1} {' '.join(argv_list)}",
            plain,
            cached,
            info,
        )
        self.steps.append(step)
        return step

    def report(self) -> str:
        return "\n".join(step.report() for step in self.steps)

    def check(self, step: Step) -> None:
        """The step's cached run did exactly what the plain run did."""
        assert step.plain.code == 0, (
            f"the plain run itself failed:\n{step.plain.stderr}"
        )
        assert not step.diffs, "cached differs from plain:\n" + self.report()


def black(path: Path) -> None:
    """Reformat a file with black (installed by requirements-dev.txt)."""
    subprocess.run([PYTHON, "-m", "black", "-q", str(path)], check=True, timeout=120)

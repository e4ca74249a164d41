"""The oracle for `@cached`: the same script run in a fresh interpreter
with casher and without it (a stub `casher` package whose `cached` returns
the function unchanged), on identical copies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

STUB = '''
def cached(func=None, **options):
    return func if func is not None else (lambda f: f)
'''


@dataclass
class Run:
    code: int
    out: str
    err: str


class Twin:
    """Two copies of a project: `plain` (casher stubbed out) and `cached`."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.plain = root / "plain"
        self.cached = root / "cached"
        self.plain.mkdir(parents=True, exist_ok=True)
        self.cached.mkdir(parents=True, exist_ok=True)
        for base in (self.plain, self.cached):
            for name, text in files.items():
                self.write(name, text, base)
        self.write("casher/__init__.py", STUB, self.plain)

    def write(self, name: str, text: str, base: Path | None = None) -> None:
        for b in [base] if base is not None else [self.plain, self.cached]:
            path = b / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))

    def edit(self, name: str, old: str, new: str) -> None:
        for b in (self.plain, self.cached):
            path = b / name
            text = path.read_text()
            assert old in text, (old, text)
            path.write_text(text.replace(old, new))

    def run(self, which: str, *argv: str, cwd: str = ".", env: dict | None = None, stdin: str | None = None) -> Run:
        base = self.plain if which == "plain" else self.cached
        full = dict(os.environ)
        # The plain copy finds the stub first; the cached one the real casher.
        full["PYTHONPATH"] = str(base) if which == "plain" else ""
        full.pop("CASHER_CHECK_REACH", None)
        full["CASHER_LOG"] = "debug"
        full.update(env or {})
        proc = subprocess.run(
            [sys.executable, *argv],
            cwd=base / cwd,
            env=full,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=180,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def check(self, *argv: str, hits: int | None = None, **kwargs) -> Run:
        """Runs both; the cached run's stdout and status must equal the
        plain run's. `hits`: how many `: hit` lines casher must log."""
        plain = self.run("plain", *argv, **kwargs)
        cached = self.run("cached", *argv, **kwargs)
        assert plain.code == 0, plain.err
        assert (cached.code, cached.out) == (plain.code, plain.out), f"plain:\n{plain.out}\ncached:\n{cached.out}\n{cached.err}"
        if hits is not None:
            found = sum(": hit " in line for line in cached.err.splitlines())
            assert found == hits, cached.err
        return cached

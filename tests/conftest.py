"""Shared helpers: the installed `casher` binary and a private cache dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


@pytest.fixture(scope="session")
def casher_bin() -> Path:
    """The `casher` command installed next to this interpreter by `pip install .`."""
    candidate = Path(sys.executable).parent / "casher"
    found = candidate if candidate.exists() else shutil.which("casher")
    assert found, "the casher command is not installed: run `make test` (it runs pip install .)"
    return Path(found)


@pytest.fixture(autouse=True)
def check_reach(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """Every test runs with the reachability check on, and fails if a
    cached call executed project code the static analysis did not reach."""
    monkeypatch.setenv("CASHER_CHECK_REACH", "1")
    yield
    missed = [r.getMessage() for r in caplog.records if "CASHER_CHECK_REACH" in r.getMessage()]
    assert not missed, missed


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("CASHER_DIR", str(d))
    return d


@pytest.fixture
def casher(casher_bin: Path, cache_dir: Path):
    def run(*args: str, cwd: Path | None = None, env: dict | None = None) -> Result:
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run(
            [str(casher_bin), *args],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run

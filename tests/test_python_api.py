"""The Python face of the analyzer: casher.deps and the mapped exceptions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import casher
from conftest import FIXTURES, ROOT


def test_deps_returns_the_cli_report(cache_dir: Path) -> None:
    report = casher.deps(ROOT / "examples" / "pipeline" / "clean.py", "clean")
    assert report["function"] == "clean"
    assert report["python"] == "%d.%d.%d" % sys.version_info[:3]
    names = {m["name"] for m in report["modules"]}
    assert {"clean", "pipeline.helpers.cleaning", "polars"} <= names
    assert (cache_dir / "CACHEDIR.TAG").is_file()
    assert (cache_dir / ".gitignore").read_text() == "*\n"


def test_syntax_error_is_a_python_syntax_error(cache_dir: Path) -> None:
    with pytest.raises(SyntaxError) as info:
        casher.deps(FIXTURES / "resolution" / "root_syntax_error" / "main.py")
    assert info.value.filename.endswith("main.py")
    assert info.value.lineno >= 1


def test_missing_file_and_directory(cache_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        casher.deps(tmp_path / "missing.py")
    with pytest.raises(IsADirectoryError):
        casher.deps(tmp_path)


def test_unknown_function_is_a_casher_error(cache_dir: Path) -> None:
    with pytest.raises(casher.CasherError, match="no top-level function"):
        casher.deps(ROOT / "examples" / "pipeline" / "clean.py", "nope")

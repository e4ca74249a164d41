"""Real formatters over real-world-sized sources must never change a hash.

The sources are copied from the standard library and from installed
packages into a project directory so that they count as local code, then
reformatted in place by black and by ruff format with unusual settings.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas
import pytest

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SOURCES = [
    STDLIB / "argparse.py",
    STDLIB / "dataclasses.py",
    STDLIB / "typing.py",
    STDLIB / "json" / "decoder.py",
    STDLIB / "email" / "_header_value_parser.py",
    Path(pandas.__file__).parent / "core" / "generic.py",
]


def hashes(casher, files: list[Path]) -> dict[str, str]:
    out = {}
    for f in files:
        r = casher("deps", str(f), "--json")
        assert r.code in (0, 1), r.stderr
        out[f.name] = r.json()["modules"][0]["hash"]
    return out


@pytest.fixture
def project(tmp_path: Path) -> list[Path]:
    files = []
    for i, src in enumerate(SOURCES):
        d = tmp_path / f"m{i}"
        d.mkdir()
        dst = d / src.name
        shutil.copyfile(src, dst)
        files.append(dst)
    total = sum(len(f.read_text().splitlines()) for f in files)
    assert total > 20_000, total
    return files


@pytest.mark.parametrize(
    "formatter",
    [
        [sys.executable, "-m", "black", "-q", "--line-length", "60", "--skip-string-normalization"],
        [sys.executable, "-m", "black", "-q", "--line-length", "140"],
        [sys.executable, "-m", "ruff", "format", "-q", "--line-length", "50", "--config", "format.quote-style='single'"],
        [sys.executable, "-m", "ruff", "format", "-q", "--line-length", "120", "--config", "format.indent-style='tab'"],
    ],
    ids=["black-60", "black-140", "ruff-50-single", "ruff-120-tabs"],
)
def test_formatting_never_changes_a_hash(casher, project: list[Path], formatter: list[str]) -> None:
    before = hashes(casher, project)
    texts = {f: f.read_text() for f in project}
    proc = subprocess.run([*formatter, *map(str, project)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    changed = [f for f in project if f.read_text() != texts[f]]
    assert len(changed) == len(project), "the formatter left some files alone: pick harsher settings"
    after = hashes(casher, project)
    assert after == before


def test_a_semantic_edit_in_a_big_file_changes_the_hash(casher, project: list[Path]) -> None:
    before = hashes(casher, project)
    target = project[0]
    lines = target.read_text().splitlines(keepends=True)
    # The first real `return <value>` statement (not one inside a docstring).
    ret = next(n for n in ast.walk(ast.parse("".join(lines))) if isinstance(n, ast.Return) and n.value)
    line = lines[ret.lineno - 1]
    lines[ret.lineno - 1] = line.replace("return ", "return None or ", 1)
    target.write_text("".join(lines))
    after = hashes(casher, project)
    assert after[target.name] != before[target.name]
    assert {k: v for k, v in after.items() if k != target.name} == {
        k: v for k, v in before.items() if k != target.name
    }


def function_identities(casher, files: list[Path]) -> dict[tuple[str, str], tuple[str, dict[str, str], bool]]:
    """(file, function) -> (digest, {definition identity: hash}, has a
    whole-module fallback) for the first top-level functions of each file."""
    out = {}
    for f in files:
        tree = ast.parse(f.read_text())
        names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))][:4]
        for name in names:
            r = casher("deps", str(f), "--function", name, "--json")
            assert r.code in (0, 1), r.stderr
            report = r.json()
            ids = {d["id"]: d["hash"] for d in report["definitions"]}
            out[(f.name, name)] = (report["digest"], ids, bool(report["fallbacks"]))
    assert len(out) >= 8, out.keys()
    return out


def test_function_identities_survive_black_a_comment_line_and_an_unused_function(
    casher, project: list[Path]
) -> None:
    """Definition identities are structural: reformatting, a comment line at
    the top of every module and a new unused function rename nothing and
    change no function's digest."""
    before = function_identities(casher, project)
    proc = subprocess.run(
        [sys.executable, "-m", "black", "-q", "--line-length", "60", *map(str, project)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert function_identities(casher, project) == before
    for f in project:
        f.write_text("# a new first line\n" + f.read_text() + "\n\ndef _casher_unused():\n    x = 1\n    return x\n")
    after = function_identities(casher, project)
    # A function whose identity counts some module whole (a named
    # fallback: `globals()`, a module used as a value...) sees the new
    # function; every other one is unchanged.
    precise = [k for k, v in before.items() if not v[2]]
    assert len(precise) >= 4, before.keys()
    assert {k: after[k] for k in precise} == {k: before[k] for k in precise}

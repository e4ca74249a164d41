"""End-to-end: the installed `casher deps` against fixtures and real interpreters."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import FIXTURES, ROOT

PIPELINE = ROOT / "examples" / "pipeline"


def module(report: dict, name: str) -> dict:
    for m in report["modules"]:
        if m["name"] == name:
            return m
    raise AssertionError(f"{name} not in {[m['name'] for m in report['modules']]}")


def test_the_command_is_the_native_binary(casher_bin: Path) -> None:
    assert casher_bin.read_bytes()[:4] == b"\x7fELF"


def test_json_contract_on_the_example_pipeline(casher) -> None:
    r = casher("deps", str(PIPELINE / "clean.py"), "--function", "clean", "--python", sys.executable, "--json")
    assert r.code == 0, r.stderr
    report = r.json()
    assert {"root", "function", "python", "digest", "modules", "warnings"} <= report.keys()
    assert report["root"] == str((PIPELINE / "clean.py").resolve())
    assert report["function"] == "clean"
    assert report["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert len(report["digest"]) == 64
    root = report["modules"][0]
    assert root["name"] == "clean" and root["kind"] == "local" and root["path"] == report["root"]
    for m in report["modules"]:
        assert set(m) >= {"name", "path", "kind", "hash", "distribution", "imported_by"}
        assert m["kind"] in {"local", "thirdparty", "stdlib", "extension", "builtin", "unresolved"}
    cleaning = module(report, "pipeline.helpers.cleaning")
    assert cleaning["kind"] == "local" and len(cleaning["hash"]) == 64
    assert cleaning["imported_by"] == ["pipeline.helpers"]
    polars = module(report, "polars")
    assert polars["kind"] == "thirdparty"
    import polars as pl

    assert polars["distribution"] == f"polars=={pl.__version__}"
    assert module(report, "pathlib")["kind"] == "stdlib"
    # Function level: the reached definitions, each with where and why.
    names = {d["name"]: d for d in report["definitions"]}
    assert "clean.clean" in names and names["clean.clean"]["reason"] == "used by the cached call"
    assert "pipeline.helpers.cleaning.drop_refunds" in names
    assert "pipeline.helpers.stats.revenue_by" not in names, "clean never reaches revenue_by"
    d = names["pipeline.helpers.cleaning.drop_refunds"]
    assert d["path"].endswith("cleaning.py") and d["line"] > 0 and len(d["hash"]) == 64
    assert report["fallbacks"] == []


def test_tree_output_names_kinds_and_importers(casher) -> None:
    r = casher("deps", str(PIPELINE / "summarize.py"), "--python", sys.executable)
    assert r.code == 0, r.stderr
    assert "pipeline.helpers.stats [local]" in r.stdout
    assert "pandas [thirdparty] pandas==" in r.stdout
    assert "digest:" in r.stdout


def test_missing_file_and_directory_exit_2(casher, tmp_path: Path) -> None:
    r = casher("deps", str(tmp_path / "nope.py"))
    assert r.code == 2
    assert "nope.py does not exist" in r.stderr
    r = casher("deps", str(tmp_path))
    assert r.code == 2
    assert "is a directory" in r.stderr


def test_syntax_error_in_root_exits_2_with_position(casher) -> None:
    r = casher("deps", str(FIXTURES / "resolution" / "root_syntax_error" / "main.py"), "--json")
    assert r.code == 2
    assert "main.py:" in r.stderr and "syntax error" in r.stderr
    assert r.stdout == ""


def test_syntax_error_in_dependency_is_reported_and_fails(casher) -> None:
    r = casher("deps", str(FIXTURES / "resolution" / "dep_syntax_error" / "main.py"), "--json")
    assert r.code == 1
    assert "broken.py:1:" in r.stderr
    report = r.json()
    assert report["errors"] and "broken.py:1:" in report["errors"][0]


def test_unresolved_imports_warn_but_succeed(casher) -> None:
    r = casher("deps", str(FIXTURES / "resolution" / "unresolved" / "main.py"), "--json")
    assert r.code == 0
    report = r.json()
    assert module(report, "does_not_exist")["kind"] == "unresolved"
    assert module(report, "does_not_exist")["imported_by"] == ["main"]
    assert "main.py:4: unresolved import `does_not_exist`" in r.stderr


def test_unknown_function_exits_2(casher) -> None:
    r = casher("deps", str(PIPELINE / "clean.py"), "--function", "nope")
    assert r.code == 2
    assert "no top-level function or class named \"nope\"" in r.stderr


def test_second_run_parses_nothing(casher) -> None:
    args = ("deps", str(PIPELINE / "clean.py"), "--python", sys.executable, "--json")
    first = casher(*args).json()
    second = casher(*args).json()
    assert first["stats"]["parsed"] > 0
    assert second["stats"]["parsed"] == 0
    assert first["digest"] == second["digest"]


def make_venv(tmp_path: Path) -> tuple[Path, Path]:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    return python, site


def test_site_packages_pth_editable_and_distributions(casher, tmp_path: Path) -> None:
    python, site = make_venv(tmp_path)
    # A third-party distribution with its dist-info.
    (site / "fakedist").mkdir()
    (site / "fakedist" / "__init__.py").write_text("X = 1\n")
    info = site / "fakedist-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakedist\nVersion: 1.2.3\n")
    (info / "RECORD").write_text("fakedist/__init__.py,,\nfakedist-1.2.3.dist-info/METADATA,,\n")
    # A .pth path line.
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "pthmod.py").write_text("P = 1\n")
    (site / "extra.pth").write_text(f"{extra}\n")
    # A setuptools editable finder.
    src = tmp_path / "src" / "edpkg"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("from . import inner\n")
    (src / "inner.py").write_text("I = 1\n")
    (site / "__editable___edpkg_0_1_finder.py").write_text(
        f"MAPPING = {{'edpkg': {str(src)!r}}}\nNAMESPACES = {{}}\ndef install(): pass\n"
    )
    project = tmp_path / "project"
    project.mkdir()
    main = project / "main.py"
    main.write_text("import fakedist\nimport pthmod\nimport edpkg\nimport later\n")

    r = casher("deps", str(main), "--python", str(python), "--json")
    assert r.code == 0, r.stderr
    report = r.json()
    fake = module(report, "fakedist")
    assert fake["kind"] == "thirdparty" and fake["distribution"] == "fakedist==1.2.3"
    assert module(report, "pthmod")["path"] == str(extra / "pthmod.py")
    assert module(report, "pthmod")["kind"] == "local"
    assert module(report, "edpkg")["path"] == str(src / "__init__.py")
    assert module(report, "edpkg.inner")["kind"] == "local"
    assert module(report, "later")["kind"] == "unresolved"

    # A .pth added later is seen although the interpreter answer is cached.
    later_dir = tmp_path / "later_dir"
    later_dir.mkdir()
    (later_dir / "later.py").write_text("L = 1\n")
    (site / "later.pth").write_text(f"{later_dir}\n")
    r2 = casher("deps", str(main), "--python", str(python), "--json")
    assert module(r2.json(), "later")["kind"] == "local"
    assert r2.json()["digest"] != report["digest"]


def test_relative_import_of_the_root_inside_a_package(casher, tmp_path: Path) -> None:
    pkg = tmp_path / "proj" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text("U = 1\n")
    (pkg / "step.py").write_text(
        textwrap.dedent(
            """
            from .util import U

            def step():
                return U
            """
        )
    )
    r = casher("deps", str(pkg / "step.py"), "--function", "step", "--json")
    assert r.code == 0, r.stderr
    report = r.json()
    assert report["modules"][0]["name"] == "pkg.step"
    assert module(report, "pkg.util")["kind"] == "local"


def test_fallbacks_are_reported(casher, tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def f():\n    return eval('1 + 1')\n")
    r = casher("deps", str(tmp_path / "main.py"), "--function", "f", "--json")
    assert r.code == 0, r.stderr
    fallbacks = r.json()["fallbacks"]
    assert fallbacks and fallbacks[0]["module"] == "main" and "eval" in fallbacks[0]["reason"]
    tree = casher("deps", str(tmp_path / "main.py"), "--function", "f")
    assert "reached definitions" in tree.stdout and "whole module main" in tree.stdout


def pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args], check=True)


def test_a_distribution_is_identified_with_what_it_requires(casher, tmp_path: Path) -> None:
    """Downgrading idna changes the digest of `import requests`: a
    distribution's identity covers its own requirements (Requires-Dist,
    transitively, by the installed versions)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip(python, "requests==2.32.3", "idna==3.10", "urllib3==2.2.3", "charset-normalizer==3.4.0", "certifi==2024.8.30")
    main = tmp_path / "main.py"
    main.write_text("import requests\n\ndef get():\n    return requests.__version__\n")
    args = ("deps", str(main), "--python", str(python), "--json")
    before = casher(*args)
    assert before.code == 0, before.stderr
    requests = module(before.json(), "requests")
    assert requests["distribution"] == "requests==2.32.3"
    assert "idna==3.10" in requests["requires"] and "urllib3==2.2.3" in requests["requires"]
    fn_before = casher(*args, "--function", "get").json()["digest"]

    pip(python, "idna==3.7")
    after = casher(*args)
    assert "idna==3.7" in module(after.json(), "requests")["requires"]
    assert after.json()["digest"] != before.json()["digest"]
    assert casher(*args, "--function", "get").json()["digest"] != fn_before


def test_optional_requirements_do_not_count(casher, tmp_path: Path) -> None:
    python, site = make_venv(tmp_path)

    def dist(name: str, version: str, requires: list[str]) -> None:
        (site / name).mkdir(exist_ok=True)
        (site / name / "__init__.py").write_text("X = 1\n")
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        lines = "".join(f"Requires-Dist: {r}\n" for r in requires)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{lines}")
        (info / "RECORD").write_text(f"{name}/__init__.py,,\n")

    dist("app", "1.0", ["core>=1", 'extra_only ; extra == "fancy"'])
    dist("core", "2.0", ["base"])
    dist("base", "0.5", [])
    dist("extra_only", "1.0", [])
    main = tmp_path / "main.py"
    main.write_text("import app\n")
    r = casher("deps", str(main), "--python", str(python), "--json").json()
    assert module(r, "app")["requires"] == ["base==0.5", "core==2.0"]
    # An optional (extra) requirement changing: same digest.
    (site / "extra_only-1.0.dist-info").rename(site / "extra_only-1.1.dist-info")
    (site / "extra_only-1.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: extra_only\nVersion: 1.1\n")
    assert casher("deps", str(main), "--python", str(python), "--json").json()["digest"] == r["digest"]
    # A transitive requirement changing: another digest.
    (site / "base-0.5.dist-info").rename(site / "base-0.4.dist-info")
    (site / "base-0.4.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: base\nVersion: 0.4\n")
    again = casher("deps", str(main), "--python", str(python), "--json").json()
    assert module(again, "app")["requires"] == ["base==0.4", "core==2.0"]
    assert again["digest"] != r["digest"]


def test_a_venv_casher_defaults_to_the_venv_python(casher_bin: Path, tmp_path: Path, cache_dir: Path) -> None:
    # pytest is installed in the venv casher comes from; its python is the default.
    main = tmp_path / "main.py"
    main.write_text("import pytest\n")
    proc = subprocess.run([str(casher_bin), "deps", str(main), "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    report = json.loads(proc.stdout)
    assert report["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert module(report, "pytest")["distribution"] == f"pytest=={pytest_version()}"


def pytest_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("pytest")


DEEP = {
    "sum": "x = " + "+".join(["1"] * 50_000) + "\n",
    "brackets": "x = " + "(" * 100_000 + "1" + ")" * 100_000 + "\n",
    "calls": "x = f" + "()" * 50_000 + "\n",
    "attributes": "x = a" + ".b" * 50_000 + "\n",
}


def test_deep_nesting_is_a_per_file_error(casher, tmp_path: Path) -> None:
    for name, source in DEEP.items():
        deep = tmp_path / f"deep_{name}.py"
        deep.write_text("import os\n\n" + source)
        # Like a syntax error: 2 for the root file, 1 for a dependency.
        r = casher("deps", str(deep))
        assert r.code == 2, (name, r.code, r.stderr)
        assert f"deep_{name}.py:3:" in r.stderr, r.stderr
        # In a function's static closure: the report lists the error.
        main = tmp_path / "main.py"
        main.write_text(f"def f(flag):\n    if flag:\n        import deep_{name}\n    return 1\n")
        r = casher("deps", str(main), "--function", "f")
        assert r.code == 1, (name, r.stderr)
        assert f"deep_{name}.py:3:" in r.stderr


def test_deep_module_in_a_static_closure_never_crashes_python(tmp_path: Path, cache_dir: Path) -> None:
    for name, source in DEEP.items():
        (tmp_path / f"deep_{name}.py").write_text(source)
    (tmp_path / "main.py").write_text(
        "from casher import cached\n\n"
        "@cached\n"
        "def f(flag):\n"
        "    if flag:\n"
        + "".join(f"        import deep_{name}\n" for name in DEEP)
        + "    return 41 + 1\n\n"
        "if __name__ == '__main__':\n"
        "    import casher\n"
        "    print(f(False), f(False))\n"
        + "".join(
            f"    try:\n        casher.deps('deep_{name}.py')\n    except Exception as e:\n        print('error', type(e).__name__)\n"
            for name in DEEP
        )
    )
    proc = subprocess.run([sys.executable, "main.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stdout.splitlines()
    assert lines[0] == "42 42"
    assert len(lines) == 1 + len(DEEP) and all(line.startswith("error ") for line in lines[1:]), lines


def test_a_fifo_is_never_opened(casher, tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "x.py"
    os.mkfifo(fifo)
    r = casher("deps", str(fifo))
    assert r.code == 2
    assert "not a regular file" in r.stderr
    main = tmp_path / "main.py"
    main.write_text("import x\n")
    r = casher("deps", str(main))
    assert r.code == 1
    assert "x.py: not a regular file" in r.stderr

"""casher.auto_cli end to end: a real script, real polars input, caching."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl


SCRIPT = textwrap.dedent(
    '''
    import enum
    from pathlib import Path
    from typing import Literal

    import polars as pl
    from casher import cached


    class Mode(enum.Enum):
        fast = "fast"
        exact = "exact"


    @cached
    def transform(df: pl.DataFrame, threshold: float, scale: int = 2, label: str = "x",
                  mode: Mode = Mode.fast, kind: Literal["a", "b"] = "a", verbose: bool = False,
                  tags: list[str] = ["t"]) -> pl.DataFrame:
        """Keep rows above the threshold and scale them."""
        print(f"transforming with {mode.value} {kind} {tags}")
        return df.filter(pl.col("x") > threshold).with_columns(pl.col("x") * scale)


    if __name__ == "__main__":
        import casher.auto_cli
        casher.auto_cli.run(transform)
    '''
)


def run(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CASHER_LOG="debug")
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_help_shows_docstring_defaults_and_choices(tmp_path: Path, cache_dir: Path) -> None:
    script = tmp_path / "transform.py"
    script.write_text(SCRIPT)
    r = run(script, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for text in ["Keep rows above the threshold", "--threshold", "--no-verbose", "{fast,exact}", "{a,b}", "default: 2", "--output"]:
        assert text in r.stdout, (text, r.stdout)


def test_runs_writes_output_and_caches(tmp_path: Path, cache_dir: Path) -> None:
    script = tmp_path / "transform.py"
    script.write_text(SCRIPT)
    pl.DataFrame({"x": [1, 5, 10]}).write_parquet(tmp_path / "in.parquet")
    args = ["--df", "in.parquet", "--threshold", "2", "--mode", "exact", "--kind", "b", "--tags", "p", "q", "--output", "out.csv"]
    first = run(script, *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "transforming with exact b ['p', 'q']" in first.stdout
    assert (tmp_path / "out.csv").read_text() == "x\n10\n20\n"
    (tmp_path / "out.csv").unlink()
    second = run(script, *args, cwd=tmp_path)
    assert "transform: hit" in second.stderr, second.stderr
    assert "transforming with exact b ['p', 'q']" in second.stdout, "output replayed"
    assert (tmp_path / "out.csv").read_text() == "x\n10\n20\n"
    bad = run(script, "--df", "in.txt", "--threshold", "1", cwd=tmp_path)
    assert bad.returncode == 2 and "expected a" in bad.stderr


OPTIONALS = textwrap.dedent(
    '''
    from __future__ import annotations

    import polars as pl
    from casher import cached


    @cached
    def pick(df: pl.DataFrame, limit: int | None = None, names: list[str] | None = None, scale: float = 1.0) -> list:
        """Column values."""
        rows = df["x"].to_list()[: limit] if limit is not None else df["x"].to_list()
        return [r * scale for r in rows] + (names or [])


    if __name__ == "__main__":
        import casher.auto_cli
        casher.auto_cli.run(pick)
    '''
)


def test_pep604_optionals_required_help_and_missing_input_file(tmp_path: Path, cache_dir: Path) -> None:
    script = tmp_path / "pick.py"
    script.write_text(OPTIONALS)
    pl.DataFrame({"x": [1, 2, 3]}).write_parquet(tmp_path / "in.parquet")
    r = run(script, "--df", "in.parquet", "--limit", "2", "--names", "a", "b", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[1.0, 2.0, 'a', 'b']", "int | None parsed as int, list[str] | None as a list"
    r = run(script, "--df", "in.parquet", cwd=tmp_path)
    assert r.stdout.strip() == "[1.0, 2.0, 3.0]"
    help_text = run(script, "--help", cwd=tmp_path).stdout
    df_help = help_text[help_text.index("--df") :].split("--limit")[0]
    assert "default: None" not in df_help, help_text
    missing = run(script, "--df", "missing.parquet", cwd=tmp_path)
    assert missing.returncode == 2, missing.stderr
    assert "missing.parquet: no such file" in missing.stderr and "Traceback" not in missing.stderr

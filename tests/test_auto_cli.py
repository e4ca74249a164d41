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

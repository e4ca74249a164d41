"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any


def run_times(cmd: list[str], cwd: Path, env: dict | None = None, before=None, runs: int = 7) -> list[float]:
    """Wall time of each of `runs` runs of `cmd` (output discarded); `before`
    runs untimed ahead of each."""
    times = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def median_time(cmd: list[str], cwd: Path, env: dict | None = None, before=None, runs: int = 7) -> float:
    return statistics.median(run_times(cmd, cwd, env, before, runs))


def local_copy(package: Any, project: Path) -> Path:
    """Copies an installed package's source into `project` (once), so that
    the analyzer sees it as project code rather than a distribution."""
    import shutil

    src = Path(package.__file__).parent
    if not (project / src.name).exists():
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir(parents=True)
        shutil.copytree(src, project / src.name, ignore=shutil.ignore_patterns("__pycache__"))
    return project

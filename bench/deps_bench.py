"""`casher deps` on django copied into a project as local code, cold and warm,
beside grimp.build_graph and `ruff analyze graph` on the same tree.

Targets (issue 2, this 2-core machine): cold <= 0.15 s, warm <= 0.02 s.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from timing import local_copy, run_times

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "deps"
SKIP = ("django.conf.app_template", "django.conf.project_template", "django.conf.locale")


def main_source(root: Path) -> str:
    """A script importing every subpackage of django (not its tests or templates)."""
    lines = []
    for init in sorted(root.glob("django/**/__init__.py")):
        name = ".".join(init.parent.relative_to(root).parts)
        if not name.startswith(SKIP):
            lines.append(f"import {name}")
    return "\n".join(lines) + "\n\n\ndef run():\n    return django.VERSION\n"


def project() -> Path:
    import django

    dst = local_copy(django, WORK / "project")
    (dst / "main.py").write_text(main_source(dst))
    return dst


timed = run_times


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> bool:
    proj = project()
    cache = WORK / "cache"
    env = dict(os.environ, CASHER_DIR=str(cache))
    casher = shutil.which("casher")
    assert casher, "casher is not on PATH (run through `make bench`)"
    deps = [casher, "deps", "main.py", "--python", sys.executable, "--json"]

    # Warm up the interpreter answer once; report it apart.
    shutil.rmtree(cache, ignore_errors=True)
    first = timed(deps, proj, env, runs=1)[0]
    report = json.loads(subprocess.run(deps, cwd=proj, env=env, capture_output=True, check=True).stdout)
    local = sum(1 for m in report["modules"] if m["kind"] == "local")

    def drop_index():
        shutil.rmtree(cache / "analyzer-v1" / "index", ignore_errors=True)

    cold = timed(deps, proj, env, before=drop_index)
    warm = timed(deps, proj, env)
    fn_deps = deps + ["--function", "run"]
    fn_cold = timed(fn_deps, proj, env, before=drop_index)
    fn_warm = timed(fn_deps, proj, env)

    grimp_code = "import grimp, sys; sys.path.insert(0, '.'); grimp.build_graph('django', cache_dir={cache!r})"
    grimp_cache = WORK / "grimp-cache"

    def drop_grimp():
        shutil.rmtree(grimp_cache, ignore_errors=True)

    grimp_cold = timed([sys.executable, "-c", grimp_code.format(cache=str(grimp_cache))], proj, before=drop_grimp)
    grimp_warm = timed([sys.executable, "-c", grimp_code.format(cache=str(grimp_cache))], proj)
    python_startup = timed([sys.executable, "-c", "import grimp"], proj)
    ruff = [sys.executable, "-m", "ruff", "analyze", "graph", "django"]
    ruff_t = timed(ruff, proj)

    print(f"\n## casher deps on django {report['modules'][0]['name']}: {len(report['modules'])} modules, {local} local")
    print(f"{'tool':44} {'median':>9} {'vs casher':>10}")
    rows = [
        ("casher deps, cold (no index)", med(cold)),
        ("casher deps, warm (index)", med(warm)),
        ("casher deps, first ever (asks the interpreter)", first),
        ("grimp.build_graph, cold (python start incl.)", med(grimp_cold)),
        ("grimp.build_graph, warm (python start incl.)", med(grimp_warm)),
        ("  of which python + import grimp", med(python_startup)),
        ("ruff analyze graph (no hashing)", med(ruff_t)),
    ]
    for name, t in rows:
        base = med(cold) if "cold" in name or "ruff" in name or "first" in name else med(warm)
        print(f"{name:44} {t * 1000:8.1f}ms {t / base:9.2f}x")
    for label, fn_t, mod_t in [("cold", fn_cold, cold), ("warm", fn_warm, warm)]:
        ratio = med(fn_t) / med(mod_t)
        print(
            f"{'casher deps --function run, ' + label:44} {med(fn_t) * 1000:8.1f}ms {ratio:9.2f}x of module level"
            f"  (target <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'})"
        )
    cold_ok, warm_ok = med(cold) <= 0.15, med(warm) <= 0.02
    print(f"target cold <= 150 ms: {'met' if cold_ok else 'MISSED'}; warm <= 20 ms: {'met' if warm_ok else 'MISSED'}")
    print(
        f"grimp warm minus python start: {(med(grimp_warm) - med(python_startup)) * 1000:.1f} ms; "
        f"grimp cold minus python start: {(med(grimp_cold) - med(python_startup)) * 1000:.1f} ms"
    )
    return True

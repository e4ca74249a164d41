"""`casher run`: miss overhead vs the plain command and vs `strace -f
--seccomp-bpf`, and hit latency vs ccache hits on the same compiles.

Targets (issue 4): miss <= 1.10x (python import), <= 1.5x (gcc), <= 2.5x
(tar | cat) of plain; hits as fast as or faster than ccache.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from timing import median_time

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "run"

CPP = "#include <bits/stdc++.h>\nint f() { std::vector<int> v{1, 2, 3}; return std::accumulate(v.begin(), v.end(), 0); }\n"


def ensure_tool(name: str, package: str) -> bool:
    if shutil.which(name):
        return True
    subprocess.run(["sh", "-c", f"(apt-get update -qq && apt-get install -y -qq {package}) >/dev/null 2>&1"])
    return shutil.which(name) is not None


def timed(cmd: list[str], env: dict, runs: int, cwd: Path, before=None) -> float:
    return median_time(cmd, cwd, env, before, runs)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "hello.c").write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    (WORK / "many.cpp").write_text(CPP)
    casher = shutil.which("casher")
    assert casher, "casher is not on PATH (run through `make bench`)"
    cache = WORK / "cache"
    env = dict(os.environ, CASHER_DIR=str(cache))
    have_strace = ensure_tool("strace", "strace")
    have_ccache = ensure_tool("ccache", "ccache")

    commands = {
        "python3 -c 'import json,email,http.client'": (["python3", "-c", "import json, email, http.client"], 1.10),
        "gcc -O2 -c hello.c": (["gcc", "-O2", "-c", "hello.c"], 1.5),
        "tar cf - /usr/include | cat >/dev/null": (["sh", "-c", "tar cf - /usr/include 2>/dev/null | cat >/dev/null"], 2.5),
    }
    print("\n## casher run, miss overhead (median of 5; --force runs and records every time)")
    print(f"{'command':44} {'plain':>9} {'casher miss':>12} {'ratio':>6} {'target':>7} {'strace -f':>10} {'ratio':>6}")
    for name, (cmd, target) in commands.items():
        plain = timed(cmd, env, 5, WORK)
        miss = timed([casher, "run", "--force", "--", *cmd], env, 5, WORK)
        row = f"{name:44} {plain * 1e3:7.1f}ms {miss * 1e3:10.1f}ms {miss / plain:5.2f}x {'<=' + str(target) + 'x':>7}"
        if have_strace:
            st = timed(["strace", "-f", "--seccomp-bpf", "-qq", "-o", "/dev/null", *cmd], env, 5, WORK)
            row += f" {st * 1e3:8.1f}ms {st / plain:5.2f}x"
        verdict = "met" if miss / plain <= target else "MISSED"
        print(f"{row}  {verdict}")

    print("\n## hit latency (median of 30), casher run vs ccache")
    ccache_env = dict(env, CCACHE_DIR=str(WORK / "ccache"))
    print(f"{'compile':36} {'casher hit':>11} {'ccache hit':>11} {'ratio':>6}")
    for name, cmd in {
        "gcc -O2 -c hello.c": ["gcc", "-O2", "-c", "hello.c", "-o", "hello.o"],
        "g++ -O2 -c many.cpp (bits/stdc++.h)": ["g++", "-O2", "-c", "many.cpp", "-o", "many.o"],
    }.items():
        subprocess.run([casher, "run", "--", *cmd], cwd=WORK, env=env, check=True, capture_output=True)
        hit = timed([casher, "run", "--", *cmd], env, 30, WORK)
        if have_ccache:
            subprocess.run(["ccache", *cmd], cwd=WORK, env=ccache_env, check=True, capture_output=True)
            cc = timed(["ccache", *cmd], ccache_env, 30, WORK)
            verdict = "met" if hit <= cc else "MISSED"
            print(f"{name:36} {hit * 1e3:9.2f}ms {cc * 1e3:9.2f}ms {hit / cc:5.2f}x  {verdict}")
        else:
            print(f"{name:36} {hit * 1e3:9.2f}ms {'(no ccache)':>11}")
    inputs = subprocess.run(
        [casher, "run", "--explain", "--", "g++", "-O2", "-c", "many.cpp", "-o", "many.o"],
        cwd=WORK, env=env, capture_output=True, text=True,
    ).stdout.split()[1]
    show = subprocess.run([casher, "cache", "show", inputs, "--json"], cwd=WORK, env=env, capture_output=True, text=True)
    import json

    n = len(json.loads(show.stdout)["variants"][0]["inputs"])
    print(f"(the g++ entry records {n} inputs)")
    true_t = timed(["true"], env, 30, WORK)
    print(f"process spawn floor of this harness (`true`): {true_t * 1e3:.2f}ms")


if __name__ == "__main__":
    main()

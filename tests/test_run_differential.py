"""Differential test of `casher run`: a random sequence of filesystem mutations
is applied to two identical trees; after each one, real commands run plainly in
one tree and under `casher run` (one shared cache) in the other, and
everything must be equal (see tests/difftree.py for what is compared).

`make test` runs a fixed seed; `bench/difftest.py` runs longer with a random
seed (DIFFTEST_SEED replays one). A difference is reported with the seed, the
iteration, the mutations so far and the command; the cached tree is then
re-synchronised from the plain one and the campaign goes on, so one run lists
every kind of difference it met, not just the first.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from difftree import PYTHON, TEMPLATES, Cmd, Pair, content, find_casher

SEED = 20261121
ITERATIONS = int(os.environ.get("DIFFTEST_ITERATIONS", "250"))
COMMANDS_PER_ITERATION = 7

PY_SCRIPT = r"""
import os, stat, hashlib
for name in sorted(os.listdir('src')):
    p = os.path.join('src', name)
    st = os.lstat(p)
    kind = 'l' if stat.S_ISLNK(st.st_mode) else 'd' if stat.S_ISDIR(st.st_mode) else 'f'
    extra = ''
    if os.path.isfile(p):
        extra = hashlib.sha1(open(p, 'rb').read()).hexdigest()[:8]
    print(name, kind, oct(st.st_mode & 0o777), os.path.exists(p), os.access(p, os.X_OK),
          os.path.relpath(os.path.realpath(p)), extra)
"""

COMMANDS = (
    Cmd("counter", ("sh", "-c", 'n=$(cat state/counter 2>/dev/null || echo 0); echo $((n+1)) > state/counter; echo run $((n+1))')),
    Cmd("config", ("sh", "-c", "[ -f state/my.cfg ] || cp state/default.cfg state/my.cfg; cat state/my.cfg")),
    Cmd("append", ("sh", "-c", "echo line >> state/log; wc -l < state/log")),
    Cmd("make", ("make",), cwd="proj", flags=("--cache-failures",)),
    Cmd("app", ("sh", "-c", "./app"), cwd="proj", flags=("--cache-failures",)),
    Cmd("gcc", ("sh", "-c", "gcc -Iinc0 -Iinc main.c util.c -o ../out/direct && ../out/direct"), cwd="proj"),
    Cmd("tar", ("sh", "-c", "find src ! -type d | sort | tar cf out/src.tar --no-recursion -T - && tar tvf out/src.tar --full-time")),
    Cmd("find", ("sh", "-c", "find src -type f | sort; echo --; find src -type l | sort; echo --; find src -type d | sort")),
    Cmd("ls", ("ls", "-lR", "--time-style=+%s", "src")),
    Cmd("cp", ("sh", "-c", "rm -rf out/copy && cp -a src out/copy && ls -lR --time-style=+%s out/copy")),
    Cmd("python", (PYTHON, "-S", "-c", PY_SCRIPT)),
    Cmd("stat", ("sh", "-c", 'stat -c "%n %s %a %F %y" src/* src/data/*')),
    Cmd("readlink", ("sh", "-c", 'for f in src/*; do [ -L "$f" ] && echo "$f -> $(readlink "$f")"; done; true')),
    Cmd("xtest", ("sh", "-c", 'for f in src/* bin0/* bin1/*; do [ -x "$f" ] && echo "x $f"; [ -e "$f" ] || echo "absent $f"; done; true')),
    Cmd("dotdot", ("sh", "-c", "cat src/dlink/../cfg"), flags=("--cache-failures",)),
    Cmd("tool", ("sh", "-c", "tool hello"), flags=("--cache-failures",)),
    Cmd("script", ("sh", "-c", "./src/script.sh"), flags=("--cache-failures",)),
    Cmd("cat", ("sh", "-c", "cat src/*.txt src/lnk src/dang 2>&1; echo rc=$?")),
)

# Paths a mutation may pick (the pools are small on purpose: states recur, so
# older variants in the cache get their chance to be wrongly hit).
FILES = (
    "src/a.txt", "src/b.txt", "src/same1.txt", "src/same2.txt", "src/cfg", "src/data/x.csv",
    "src/data/cfg", "src/data/inner/deep.txt", "src/script.sh", "src/noexec.sh",
    "proj/main.c", "proj/util.c", "proj/inc/config.h", "bin1/tool", "state/my.cfg",
    "state/counter", "state/default.cfg",
)
NEW_FILES = ("src/new1.txt", "src/data/new2.csv", "src/missing.txt", "src/data/inner/new3.txt")
LINKS = ("src/lnk", "src/lnk2", "src/dang", "src/dlink")
LINK_TARGETS = ("same1.txt", "same2.txt", "a.txt", "data/inner", "data", "missing.txt", "nowhere")
DIRS = ("src/data/inner", "src/newdir", "src/data/sub")
SHADOWS = ("proj/inc0/config.h", "bin0/tool")


@dataclass(frozen=True)
class Mutation:
    kind: str
    path: str
    k: int = 0
    pad: int = 0
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}({self.path}{', ' + self.arg if self.arg else ''}, k={self.k}, pad={self.pad})"

    def apply(self, tree: Path, stamp: int) -> None:
        p = tree / self.path
        touched = [p]
        if self.kind in ("edit", "create", "shadow", "same_size", "same_size_keep_mtime"):
            old = p.lstat() if p.is_file() else None
            if self.kind.startswith("same_size") and old is not None:
                data = p.read_bytes()
                pad = len(data) - len(content(self.path, 0))
                data = content(self.path, self.k, max(pad, 0))
                if len(data) != old.st_size:
                    data = data[: old.st_size].ljust(old.st_size, b"\n")
            else:
                data = content(self.path, self.k, self.pad)
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "wb") as f:  # in place: same inode, like an editor that truncates
                f.write(data)
            if self.path in TEMPLATES and self.path.split("/")[0] in ("bin0", "bin1"):
                p.chmod(0o755)
            if self.kind == "same_size_keep_mtime" and old is not None:
                os.utime(p, ns=(old.st_atime_ns, old.st_mtime_ns))
                touched = []
        elif self.kind == "touch":
            touched = [p]
            os.utime(p, ns=(stamp, stamp))
            return
        elif self.kind == "chmod":
            mode = p.stat().st_mode
            p.chmod((mode | 0o111) if self.arg == "+x" else (mode & ~0o111))
            return  # ctime changes, mtime does not
        elif self.kind == "rename_over":
            tmp = p.with_name(".tmp-" + p.name)
            tmp.write_bytes(content(self.path, self.k, self.pad))
            tmp.chmod(p.stat().st_mode & 0o777)
            os.replace(tmp, p)
        elif self.kind == "symlink":
            if p.is_symlink() or p.is_file():
                p.unlink()
            os.symlink(self.arg, p)
        elif self.kind == "file_to_dir":
            p.unlink()
            p.mkdir()
            (p / "inside.txt").write_bytes(b"inside\n")
            touched += [p / "inside.txt"]
        elif self.kind == "dir_to_file":
            shutil.rmtree(p)
            p.write_bytes(content(self.path, self.k))
        elif self.kind == "mkdir":
            p.mkdir()
        elif self.kind == "rm":
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            touched = []
        else:
            raise AssertionError(self.kind)
        for t in touched + [p.parent]:
            if os.path.lexists(t):
                os.utime(t, ns=(stamp, stamp), follow_symlinks=False)


def choose_mutation(rng: random.Random, tree: Path) -> Mutation:
    """A mutation that applies to the plain tree's current state."""
    is_file = lambda r: (tree / r).is_file() and not (tree / r).is_symlink()
    files = [r for r in FILES + NEW_FILES + SHADOWS if is_file(r)]
    while True:
        kind = rng.choice(
            ["edit", "edit", "same_size", "same_size_keep_mtime", "touch", "touch", "chmod", "rename_over",
             "symlink", "repoint", "create", "shadow", "shadow", "rm", "file_to_dir", "dir_to_file", "mkdir"]
        )
        k, pad = rng.randrange(4), rng.randrange(3)
        if kind in ("edit", "same_size", "same_size_keep_mtime", "touch", "chmod", "rename_over") and files:
            path = rng.choice(files)
            arg = rng.choice(["+x", "-x"]) if kind == "chmod" else ""
            return Mutation(kind, path, k, pad, arg)
        if kind == "symlink":
            return Mutation("symlink", rng.choice(LINKS), arg=rng.choice(LINK_TARGETS))
        if kind == "repoint":
            target = rng.choice(["same1.txt", "same2.txt"])
            return Mutation("symlink", "src/lnk", arg=target)
        if kind == "create":
            free = [r for r in NEW_FILES + ("state/my.cfg", "state/counter") if not os.path.lexists(tree / r)]
            free = [r for r in free if (tree / r).parent.is_dir()]
            if free:
                return Mutation("create", rng.choice(free), k, pad)
        if kind == "shadow":
            path = rng.choice(SHADOWS)
            if not os.path.lexists(tree / path) or is_file(path):
                return Mutation("shadow", path, k, pad)
        if kind == "rm":
            present = [r for r in FILES + NEW_FILES + SHADOWS + LINKS + DIRS if os.path.lexists(tree / r)]
            present = [r for r in present if r not in ("proj/Makefile",)]
            if present:
                return Mutation("rm", rng.choice(present))
        if kind == "file_to_dir" and files:
            return Mutation("file_to_dir", rng.choice([f for f in files if f.startswith("src/")] or files))
        if kind == "dir_to_file":
            dirs = [d for d in DIRS + tuple(f for f in FILES if f.startswith("src/")) if (tree / d).is_dir() and not (tree / d).is_symlink()]
            if dirs:
                return Mutation("dir_to_file", rng.choice(dirs), k)
        if kind == "mkdir":
            free = [d for d in DIRS if not os.path.lexists(tree / d) and (tree / d).parent.is_dir()]
            if free:
                return Mutation("mkdir", rng.choice(free))


@dataclass
class Report:
    seed: int
    iterations: int
    differences: list[tuple[int, str, Mutation | None, list[str]]]
    runs: int
    hits: int
    seconds: float
    history: list[Mutation]

    def summary(self) -> str:
        by_cmd: dict[str, list] = defaultdict(list)
        for it, name, mut, lines in self.differences:
            by_cmd[name].append((it, mut, lines))
        out = [
            (
                f"differential campaign seed={self.seed} iterations={self.iterations}: {self.runs} cached runs, "
                f"{self.hits} hits, {len(self.differences)} differences in {self.seconds:.0f}s "
                f"(replay: DIFFTEST_SEED={self.seed} python bench/difftest.py --iterations {self.iterations})"
            )
        ]
        for name, items in sorted(by_cmd.items(), key=lambda kv: -len(kv[1])):
            it, mut, lines = items[0]
            on_hits = sum(any(line.startswith("(cached run: HIT") for line in ls) for _, _, ls in items)
            out.append(
                f"\n== `{name}`: {len(items)} difference(s) ({on_hits} on a hit); "
                f"first at iteration {it} after {mut}:"
            )
            out += ["   " + line for line in lines[:25]]
        return "\n".join(out)


def run_campaign(base: Path, seed: int, iterations: int, casher: Path | None = None, log=None) -> Report:
    rng = random.Random(seed)
    pair = Pair(base, casher or find_casher())
    pair.build()
    start = time.monotonic()
    differences, history, runs, hits = [], [], 0, 0

    def check(it: int, mut: Mutation | None) -> None:
        nonlocal runs, hits
        # A random subset per iteration keeps `make test` within its time budget;
        # over the campaign every command runs after many different mutations.
        order = rng.sample(COMMANDS, len(COMMANDS) if it == 0 else COMMANDS_PER_ITERATION)
        for cmd in order:
            _, b, diffs = pair.run(cmd)
            runs, hits = runs + 1, hits + b.hit
            if cmd.name == "make" and not diffs:
                diffs = pair.make_q(after=b)
            if diffs:
                differences.append((it, cmd.name, mut, diffs))
                if log:
                    log(f"[seed {seed} it {it}] `{cmd.name}` after {mut}:\n  " + "\n  ".join(diffs[:15]))
                pair.resync()

    check(0, None)
    for it in range(1, iterations + 1):
        mut = choose_mutation(rng, pair.plain)
        history.append(mut)
        stamp = time.time_ns()
        pair.both(lambda tree, mut=mut, stamp=stamp: mut.apply(tree, stamp))
        check(it, mut)
    return Report(seed, iterations, differences, runs, hits, time.monotonic() - start, history)


def test_differential_fixed_seed(tmp_path: Path, casher_bin: Path) -> None:
    report = run_campaign(tmp_path, SEED, ITERATIONS, casher_bin)
    print(report.summary())
    if report.differences:
        pytest.fail(report.summary(), pytrace=False)
    # A campaign without hits would test nothing (and would itself be a needless-miss bug).
    assert report.hits >= report.runs // 20, f"too few hits to test anything:\n{report.summary()}"

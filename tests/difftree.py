"""Differential oracle for `casher run`: two identical trees, one command run
plainly in the first and under `casher run` in the second, everything compared.

A hit promises that running the command now would print, write and exit
exactly as recorded, so the oracle is the plain run itself, on an identical
copy, at the same relative cwd. The two trees live at different absolute paths
(`<base>/plain/t` and `<base>/cached/t`), so outputs are compared after the
tree's root is replaced with `<ROOT>`; the commands are chosen so that they do
not print absolute paths otherwise.

What is compared, and why it is fair:
- stdout, stderr (casher's own `casher: ...` lines removed from the cached
  side; they are kept for the diagnosis) and the exit status;
- the resulting trees: every path, its type, its permission bits, a file's
  bytes, a symlink's target;
- mtimes only where both trees got them from the same place: paths the test
  itself set (mutations give both trees the same nanosecond stamp), never the
  files a command wrote (the plain and the cached run write them at different
  moments). Commands that print mtimes (`ls -l`, `stat -c %y`, `tar tv`) only
  look at such paths. The order of the mtimes a command wrote is what `make`
  acts on; that is checked by running a plain `make -q` in both trees after
  each `make` (`Pair.make_q`).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT_TOKEN = b"<ROOT>"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
PYTHON = sys.executable


def find_casher() -> Path:
    """The `casher` installed next to this interpreter (as tests/conftest.py does)."""
    candidate = Path(sys.executable).parent / "casher"
    found = candidate if candidate.exists() else shutil.which("casher")
    assert found, "the casher command is not installed: run `make install`"
    return Path(found)


# --------------------------------------------------------------------------- the tree

MAKEFILE = """\
CFLAGS = -O0 -Iinc0 -Iinc
app: main.o libz.a
\t$(CC) -o app main.o libz.a
main.o: main.c inc/config.h
\t$(CC) $(CFLAGS) -c main.c -o main.o
util.o: util.c
\t$(CC) $(CFLAGS) -c util.c -o util.o
libz.a: util.o
\tar rcsD libz.a util.o
"""

# Every mutable file has versions k=0..9 (a one-digit change keeps the size) and
# a padding (extra trailing newlines, valid in every language used here).
TEMPLATES = {
    "proj/main.c": '#include <stdio.h>\n#include "config.h"\nint util(void);\n'
    'int main(void) {{ printf("main v{k} value=%d util=%d\\n", VALUE, util()); return 0; }}\n',
    "proj/util.c": "int util(void) {{ return {k}; }}\n",
    "proj/inc/config.h": "#define VALUE {k}\n",
    "proj/inc0/config.h": "#define VALUE 1{k}\n",
    "bin1/tool": '#!/bin/sh\necho "tool1 v{k} $*"\n',
    "bin0/tool": '#!/bin/sh\necho "tool0 v{k} $*"\n',
    "src/script.sh": "#!/bin/sh\necho script v{k}\n",
}


def content(rel: str, k: int, pad: int = 0) -> bytes:
    """Version `k` of the file at `rel` (a valid program where `rel` is one)."""
    template = TEMPLATES.get(rel, rel.rsplit("/", 1)[-1] + " v{k}\n")
    return (template.format(k=k) + "\n" * pad).encode()


def build_tree(root: Path, stamp_ns: int) -> None:
    """The starting tree (the same bytes, modes, links and mtimes every time)."""
    files = {
        "src/a.txt": content("src/a.txt", 0),
        "src/b.txt": content("src/b.txt", 0),
        "src/same1.txt": b"same\n",
        "src/same2.txt": b"same\n",
        "src/cfg": b"lexical cfg (wrong for link/../cfg)\n",
        "src/data/x.csv": b"x,1\n",
        "src/data/y.csv": b"y,2\n",
        "src/data/cfg": b"physical cfg (right for dlink/../cfg)\n",
        "src/data/inner/deep.txt": b"deep\n",
        "src/script.sh": content("src/script.sh", 0),
        "src/noexec.sh": b"#!/bin/sh\necho noexec\n",
        "proj/Makefile": MAKEFILE.encode(),
        "proj/main.c": content("proj/main.c", 0),
        "proj/util.c": content("proj/util.c", 0),
        "proj/inc/config.h": content("proj/inc/config.h", 0),
        "bin1/tool": content("bin1/tool", 0),
        "state/default.cfg": b"default config\n",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(0o644)
    for rel in ("src/script.sh", "bin1/tool"):
        (root / rel).chmod(0o755)
    for rel in ("proj/inc0", "bin0", "out"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    os.symlink("same1.txt", root / "src/lnk")
    os.symlink("data/inner", root / "src/dlink")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(Path(dirpath) / name, ns=(stamp_ns, stamp_ns), follow_symlinks=False)
    os.utime(root, ns=(stamp_ns, stamp_ns))


def mtime_fair(rel: str) -> bool:
    """Whether both trees' mtimes at `rel` come from the test, not from a command's write."""
    if rel in ("", ".", "proj") or rel.split("/", 1)[0] in ("out", "state"):
        return False
    return rel not in ("proj/app", "proj/main.o", "proj/util.o", "proj/libz.a")


def run_bounded(argv: list[str], cwd: Path, env: dict, timeout: float) -> tuple[int | str, bytes, bytes]:
    """Run `argv` in its own session; past `timeout`, kill the whole session.

    `subprocess.run(timeout=...)` kills only the direct child and then waits,
    without a bound, for its pipes to close: a grandchild holding them would
    hang the whole suite instead of failing one test."""
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
            return proc.returncode, out, err
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # something outside the session holds the pipes
                out, err = b"", b""
            return "timeout", out or b"", err or b""


@dataclass(frozen=True)
class Entry:
    kind: str
    mode: int
    data: bytes  # a file's bytes, a symlink's target, nothing else
    mtime_ns: int | None


def snapshot(root: Path, fair=mtime_fair) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                kind, data, mode = "symlink", os.readlink(p).encode(), 0
            elif stat.S_ISREG(st.st_mode):
                kind, data = "file", p.read_bytes()
            elif stat.S_ISDIR(st.st_mode):
                kind, data = "dir", b""
            else:
                kind, data = f"special {stat.S_IFMT(st.st_mode):o}", b""
            out[rel] = Entry(kind, mode, data, st.st_mtime_ns if fair(rel) else None)
    return out


def tree_diff(a: dict[str, Entry], b: dict[str, Entry]) -> list[str]:
    lines = []
    for rel in sorted(set(a) | set(b)):
        ea, eb = a.get(rel), b.get(rel)
        if ea == eb:
            continue
        if ea is None or eb is None:
            lines.append(f"{rel}: {'missing' if eb is None else 'extra'} in the cached tree ({(ea or eb).kind})")
            continue
        what = []
        if ea.kind != eb.kind:
            what.append(f"type {ea.kind} vs {eb.kind}")
        if ea.mode != eb.mode:
            what.append(f"mode {ea.mode:o} vs {eb.mode:o}")
        if ea.data != eb.data:
            at = next((i for i, (x, y) in enumerate(zip(ea.data, eb.data)) if x != y), min(len(ea.data), len(eb.data)))
            lo = max(0, at - 20)
            what.append(
                f"content ({len(ea.data)} vs {len(eb.data)} bytes, first difference at {at}: "
                f"{ea.data[lo:at + 40]!r} vs {eb.data[lo:at + 40]!r})"
            )
        if ea.mtime_ns != eb.mtime_ns:
            what.append(f"mtime {ea.mtime_ns} vs {eb.mtime_ns}")
        lines.append(f"{rel}: " + ", ".join(what) + " (plain vs cached)")
    return lines


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Cmd:
    """A command run at `cwd` (relative to the tree); `{tree}` in argv is the tree's root."""

    name: str
    argv: tuple[str, ...]
    cwd: str = "."
    flags: tuple[str, ...] = ()  # extra `casher run` flags
    timeout: float = 60.0


@dataclass
class Outcome:
    code: int | str
    stdout: bytes
    stderr: bytes
    casher_lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def hit(self) -> bool:
        return any(line.startswith("casher: hit") for line in self.casher_lines)

    @property
    def notes(self) -> list[str]:
        """casher's own messages other than the -v hit/miss lines and info logs (warnings, refusals)."""
        return [
            line
            for line in self.casher_lines
            if not line.startswith(("casher: hit", "casher: miss", "casher: recorded")) and not LOG_ONLY.match(line)
        ]


ANSI = re.compile(rb"\x1b\[[0-9;]*m")
# casher's own stderr: its messages (`casher: ...`) and its `tracing` log lines
# (`  INFO ...`, ` WARN ...`: no target, no time, see cli/src/logging.rs).
CASHER_LINE = re.compile(rb"^(casher[: ]|\s*(TRACE|DEBUG|INFO|WARN|ERROR) )")
LOG_ONLY = re.compile(r"^\s*(TRACE|DEBUG|INFO) ")


def split_casher_lines(stderr: bytes) -> tuple[bytes, list[str]]:
    kept, ours = [], []
    for line in stderr.splitlines(keepends=True):
        if CASHER_LINE.match(ANSI.sub(b"", line)):
            ours.append(ANSI.sub(b"", line).decode(errors="replace").rstrip("\n"))
        else:
            kept.append(line)
    return b"".join(kept), ours


def show(data: bytes, limit: int = 400) -> str:
    text = data.decode(errors="replace")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def text_diff(name: str, a: bytes, b: bytes) -> list[str]:
    la = a.decode(errors="replace").splitlines()
    lb = b.decode(errors="replace").splitlines()
    d = list(difflib.unified_diff(la, lb, f"{name} plain", f"{name} cached", lineterm="", n=1))
    return d[:30] + (["..."] if len(d) > 30 else [])


class Pair:
    """Two identical trees; `run` executes a command plainly in one, under casher in the other."""

    def __init__(
        self, base: Path, casher: Path, cache_dir: Path | None = None, env: dict | None = None, fair=mtime_fair
    ):
        self.base = base
        self.plain = base / "plain" / "t"
        self.cached = base / "cached" / "t"
        self.casher = casher
        self.cache_dir = cache_dir or base / "cache"
        self.extra_env = dict(env or {})
        self.fair = fair  # which paths' mtimes both trees got from the test

    def build(self, builder=build_tree) -> None:
        stamp = time.time_ns()
        for tree in (self.plain, self.cached):
            if tree.exists():
                shutil.rmtree(tree)
            tree.mkdir(parents=True)
            builder(tree, stamp)

    def resync(self) -> None:
        """Make the cached tree a copy of the plain one again (after a reported difference)."""
        shutil.rmtree(self.cached)
        subprocess.run(["cp", "-a", str(self.plain), str(self.cached)], check=True)

    def env(self, tree: Path) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CASHER", "MAKE", "MFLAGS", "PYTHON"))
        }
        env.update(
            PATH=f"{tree}/bin0:{tree}/bin1:{SYSTEM_PATH}",
            LC_ALL="C",
            LANG="C",
            TZ="UTC",
            CASHER_DIR=str(self.cache_dir),
            PWD=str(tree),
        )
        env.update({k: v.replace("{tree}", str(tree)) for k, v in self.extra_env.items()})
        return env

    def casher_argv(self, cmd: Cmd) -> list[str]:
        # DIFFTEST_FORCE=1 makes every cached run a recording miss: the worst-case
        # runtime of a campaign, for sizing it (a correct product misses more often).
        force = ("--force",) if os.environ.get("DIFFTEST_FORCE") == "1" else ()
        return [str(self.casher), "run", "-v", *force, *cmd.flags, "--"]

    def argv(self, tree: Path, cmd: Cmd, cached: bool, wrapped: bool) -> list[str]:
        """`{tree}` and `{side}` are expanded; a wrapped command says where `casher run`
        goes with `{casher_run}` (nothing on the plain side); others get it in front."""
        prefix = self.casher_argv(cmd) if cached else []
        side = "cached" if cached else "plain"
        argv: list[str] = [] if wrapped else list(prefix)
        for a in cmd.argv:
            if wrapped and a == "{casher_run}":
                argv += prefix
                continue
            if wrapped:
                a = a.replace("{casher_run}", shlex.join(prefix))
            # a `casher run` nested inside the traced command (plain side: just the command)
            a = a.replace("{casher_inner}", shlex.join([str(self.casher), "run", "--"]) if cached else "")
            argv.append(a.replace("{tree}", str(tree)).replace("{side}", side))
        return argv

    def _exec(self, tree: Path, cmd: Cmd, cached: bool, env: dict | None = None, wrapped: bool = False) -> Outcome:
        argv = self.argv(tree, cmd, cached, wrapped)
        full_env = self.env(tree)
        full_env["PWD"] = str(tree / cmd.cwd)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v.replace("{tree}", str(tree)).replace("{side}", "cached" if cached else "plain")
        start = time.monotonic()
        try:
            code, out, err = run_bounded(argv, cwd=tree / cmd.cwd, env=full_env, timeout=cmd.timeout)
        except OSError as e:  # the program could not be started at all
            code, out, err = f"exec failed: {e.strerror}", b"", b""
        seconds = time.monotonic() - start
        roots = sorted({str(tree).encode(), str(tree.resolve()).encode()}, key=len, reverse=True)
        for r in roots:
            out, err = out.replace(r, ROOT_TOKEN), err.replace(r, ROOT_TOKEN)
        ours: list[str] = []
        if cached:
            err, ours = split_casher_lines(err)
        return Outcome(code, out, err, ours, seconds)

    def run_plain(self, cmd: Cmd, env: dict | None = None, wrapped: bool = False) -> Outcome:
        return self._exec(self.plain, cmd, cached=False, env=env, wrapped=wrapped)

    def run_cached(self, cmd: Cmd, env: dict | None = None, wrapped: bool = False) -> Outcome:
        return self._exec(self.cached, cmd, cached=True, env=env, wrapped=wrapped)

    def run(self, cmd: Cmd, env: dict | None = None, wrapped: bool = False) -> tuple[Outcome, Outcome, list[str]]:
        """Plain then cached; returns both outcomes and the differences (empty when equal)."""
        a = self.run_plain(cmd, env, wrapped)
        b = self.run_cached(cmd, env, wrapped)
        return a, b, self.differences(cmd.name, a, b)

    def differences(self, name: str, a: Outcome, b: Outcome, trees: bool = True) -> list[str]:
        diffs = []
        if a.code != b.code:
            diffs.append(f"exit status: plain {a.code}, cached {b.code}")
        if a.stdout != b.stdout:
            diffs += ["stdout differs:"] + text_diff("stdout", a.stdout, b.stdout)
        if a.stderr != b.stderr:
            diffs += ["stderr differs:"] + text_diff("stderr", a.stderr, b.stderr)
        if trees:
            td = tree_diff(snapshot(self.plain, self.fair), snapshot(self.cached, self.fair))
            if td:
                diffs += ["trees differ:"] + td[:20]
        if diffs:
            diffs.append(f"(cached run: {'HIT' if b.hit else 'miss'}; casher said: {b.casher_lines})")
        return diffs

    def make_q(self, cwd: str = "proj", after: Outcome | None = None) -> list[str]:
        """A plain `make -q` in both trees must agree (restored mtimes keep make's view)."""
        codes = []
        for tree in (self.plain, self.cached):
            p = subprocess.run(["make", "-q"], check=False, cwd=tree / cwd, env=self.env(tree), capture_output=True)
            codes.append(p.returncode)
        if codes[0] != codes[1]:
            said = f" (the cached make was a {'HIT' if after.hit else 'miss'}: {after.casher_lines})" if after else ""
            return [f"plain `make -q` afterwards: exit {codes[0]} in the plain tree, {codes[1]} in the cached one{said}"]
        return []

    def both(self, fn) -> None:
        """Apply the same change to both trees: fn(tree_root)."""
        for tree in (self.plain, self.cached):
            fn(tree)

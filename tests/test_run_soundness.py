"""`casher run` against a plain run, one named test per class of issue 9.

Each test builds two identical trees, applies the same changes to both, and
runs the same command plainly in one and under `casher run` in the other:
stdout, stderr (minus casher's own `casher:` lines), exit status and the
resulting trees (types, modes, contents, link targets) must be equal.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


def snapshot(root: Path) -> dict:
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                tree[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                tree[rel] = ("dir", oct(st.st_mode & 0o7777))
            elif stat.S_ISREG(st.st_mode):
                tree[rel] = ("file", oct(st.st_mode & 0o7777), p.read_bytes())
            else:
                tree[rel] = ("other", stat.S_IFMT(st.st_mode))
    return tree


def own_lines(stderr: str) -> tuple[str, list[str]]:
    """The command's stderr, and casher's own lines."""
    mine = [l for l in stderr.splitlines(keepends=True) if l.startswith("casher: ") or l.startswith("casher:")]
    rest = "".join(l for l in stderr.splitlines(keepends=True) if l not in mine)
    return rest, mine


class Pair:
    """Two identical trees: `plain` runs commands plainly, `cached` under casher."""

    def __init__(self, tmp_path: Path, casher_bin: Path, cache_dir: Path):
        self.plain = tmp_path / "plain"
        self.cached = tmp_path / "cached"
        self.plain.mkdir()
        self.cached.mkdir()
        self.bin = casher_bin
        self.cache_dir = cache_dir

    def both(self, change) -> None:
        change(self.plain)
        change(self.cached)

    def run(self, *cmd: str, env: dict | None = None, flags=(), pass_fds=(), umask=None, compare_tree=True):
        full_env = dict(os.environ, **(env or {}))
        kw = dict(env=full_env, capture_output=True, timeout=120, pass_fds=pass_fds)
        if umask is not None:
            kw["preexec_fn"] = lambda: os.umask(umask)
        plain = subprocess.run(list(cmd), cwd=self.plain, **kw)
        cached = subprocess.run([str(self.bin), "run", "-v", *flags, "--", *cmd], cwd=self.cached, **kw)
        p_err, _ = own_lines(plain.stderr.decode())
        c_err, mine = own_lines(cached.stderr.decode())
        note = "".join(mine)
        assert cached.returncode == plain.returncode, note
        assert cached.stdout == plain.stdout, note
        assert c_err == p_err, note
        if compare_tree:
            assert snapshot(self.cached) == snapshot(self.plain), note
        return Outcome(hit=any(l.startswith("casher: hit") for l in mine), notes=note, stdout=plain.stdout.decode())

    def explain(self, *cmd: str, env: dict | None = None):
        return subprocess.run(
            [str(self.bin), "run", "--explain", "--", *cmd],
            cwd=self.cached, env=dict(os.environ, **(env or {})), capture_output=True, text=True,
        )


class Outcome:
    def __init__(self, hit: bool, notes: str, stdout: str):
        self.hit, self.notes, self.stdout = hit, notes, stdout


@pytest.fixture
def pair(tmp_path: Path, casher_bin: Path, cache_dir: Path) -> Pair:
    return Pair(tmp_path, casher_bin, cache_dir)


def write(rel: str, text: str, mode: int | None = None):
    def change(root: Path):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if mode is not None:
            p.chmod(mode)

    return change


# 1-2. Preconditions on outputs -------------------------------------------------


def test_counter_file_read_before_it_is_written(pair: Pair) -> None:
    script = "n=$(cat counter 2>/dev/null || echo 0); echo $((n+1)) > counter; echo run $((n+1))"
    outs = [pair.run("sh", "-c", script).stdout for _ in range(4)]
    assert outs == ["run 1\n", "run 2\n", "run 3\n", "run 4\n"]
    # Back to the first state: the first result is reused, and is right.
    pair.both(lambda r: (r / "counter").unlink())
    assert pair.run("sh", "-c", script).hit


def test_config_created_only_if_missing_keeps_the_users_edit(pair: Pair) -> None:
    pair.both(write("default.cfg", "default\n"))
    script = "[ -f my.cfg ] || cp default.cfg my.cfg; cat my.cfg"
    pair.run("sh", "-c", script)
    pair.both(write("my.cfg", "edited by the user\n"))
    assert pair.run("sh", "-c", script).stdout == "edited by the user\n"
    assert pair.run("sh", "-c", script).hit


def test_append_and_noclobber_depend_on_the_old_state(pair: Pair) -> None:
    for _ in range(3):
        pair.run("sh", "-c", "echo line >> log; wc -l < log")
    pair.both(lambda r: (r / "log").unlink())
    pair.run("sh", "-c", "set -C; echo new > made || echo exists; cat made")
    pair.run("sh", "-c", "set -C; echo new > made || echo exists; cat made")


# 3. Metadata -----------------------------------------------------------------


def test_executable_bit_test_after_chmod(pair: Pair) -> None:
    pair.both(write("f", "x\n", 0o644))
    cmd = ("sh", "-c", "[ -x f ] && echo executable || echo plain")
    pair.run(*cmd)
    assert pair.run(*cmd).hit
    pair.both(lambda r: (r / "f").chmod(0o755))
    assert pair.run(*cmd).stdout == "executable\n"


def test_stat_mtime_and_ls_l_after_touch_and_chmod(pair: Pair) -> None:
    pair.both(write("f", "same\n", 0o644))
    pair.both(lambda r: os.utime(r / "f", (1_000_000_000, 1_000_000_000)))
    cmd = ("sh", "-c", "stat -c '%s %Y %a %F' f; ls -l f | cut -d' ' -f1,5-")
    pair.run(*cmd)
    pair.both(lambda r: os.utime(r / "f", (1_500_000_000, 1_500_000_000)))
    assert "1500000000" in pair.run(*cmd).stdout
    pair.both(lambda r: (r / "f").chmod(0o600))
    assert "-rw-------" in pair.run(*cmd).stdout
    assert pair.run(*cmd).hit


def test_find_type_after_a_file_becomes_a_directory(pair: Pair) -> None:
    pair.both(write("d/x", "1"))
    cmd = ("find", "d", "-type", "f")
    pair.run(*cmd)
    assert pair.run(*cmd).hit

    def swap(r: Path):
        (r / "d/x").unlink()
        (r / "d/x").mkdir()

    pair.both(swap)
    assert pair.run(*cmd).stdout == ""


def test_readlink_after_repointing_to_equal_content(pair: Pair) -> None:
    pair.both(write("a", "same\n"))
    pair.both(write("b", "same\n"))
    pair.both(lambda r: os.symlink("a", r / "l"))
    cmd = ("sh", "-c", "readlink l; cat l")
    pair.run(*cmd)

    def repoint(r: Path):
        (r / "l").unlink()
        os.symlink("b", r / "l")

    pair.both(repoint)
    assert pair.run(*cmd).stdout == "b\nsame\n"


def test_dangling_symlink_appearing(pair: Pair) -> None:
    def clear(r: Path) -> None:
        for n in "def":
            p = r / n
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)

    for script in ("ls; [ -L d ] && echo link || echo none", "[ -L e ] && echo link || echo none", "mkdir f && echo made"):
        cmd = ("sh", "-c", script)
        for _ in range(2):
            pair.both(clear)
            pair.run(*cmd)
        pair.both(clear)
        pair.both(lambda r: [os.symlink("nowhere", r / n) for n in "def"])
        out = pair.run(*cmd)
        assert not out.hit, (script, out.notes)
        pair.both(clear)


def test_tar_listing_shows_modes_and_mtimes(pair: Pair) -> None:
    pair.both(write("src/a", "a\n", 0o644))
    pair.both(lambda r: os.utime(r / "src/a", (1_000_000_000, 1_000_000_000)))
    cmd = ("sh", "-c", "tar cf - src/a | tar tvf - | awk '{print $1, $4, $5, $6}'")
    pair.run(*cmd)
    pair.both(lambda r: (r / "src/a").chmod(0o640))
    pair.run(*cmd)
    pair.both(lambda r: os.utime(r / "src/a", (1_200_000_000, 1_200_000_000)))
    assert "2008" in pair.run(*cmd).stdout


def test_make_after_touch_rebuilds_like_make(pair: Pair) -> None:
    if not shutil.which("make"):
        pytest.fail("make is required (apt-get install make)")
    pair.both(write("Makefile", "out: in.txt\n\tcat in.txt > out\n\techo built\n"))
    pair.both(write("in.txt", "v1\n"))
    pair.both(lambda r: os.utime(r / "in.txt", (1_000_000_000, 1_000_000_000)))
    pair.run("make", "-s")
    pair.run("make", "-s")  # up to date
    # Same content, newer mtime: plain make rebuilds. Both mtimes are set in the
    # past (a future one makes make print how many seconds ahead it is, which
    # differs between two runs a second apart).
    pair.both(lambda r: os.utime(r / "out", (1_000_000_100, 1_000_000_100)))
    pair.both(lambda r: os.utime(r / "in.txt", (1_000_000_200, 1_000_000_200)))
    assert pair.run("make", "-s").stdout == "built\n"


# 4. Racy timestamps ------------------------------------------------------------


@pytest.fixture
def coarse_fs(tmp_path: Path):
    """An ext4 with 128-byte inodes: 1-second timestamps."""
    image = tmp_path / "coarse.img"
    mount = tmp_path / "coarse"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)])


def test_same_second_edit_on_a_one_second_filesystem(casher_bin: Path, cache_dir: Path, coarse_fs: Path) -> None:
    f = coarse_fs / "in.txt"
    stale = 0
    for i in range(10):
        f.write_text(f"a{i}")
        first = subprocess.run([str(casher_bin), "run", "--", "cat", "in.txt"], cwd=coarse_fs, capture_output=True, text=True)
        assert first.stdout == f"a{i}"
        f.write_text(f"b{i}")  # same size, very likely the same second
        second = subprocess.run([str(casher_bin), "run", "--", "cat", "in.txt"], cwd=coarse_fs, capture_output=True, text=True)
        stale += second.stdout != f"b{i}"
    assert stale == 0
    # Stamps do get trusted once old enough: a later lookup is a hit.
    f.write_text("settled")
    subprocess.run([str(casher_bin), "run", "--", "cat", "in.txt"], cwd=coarse_fs, check=True, capture_output=True)
    time.sleep(3.2)
    again = subprocess.run([str(casher_bin), "run", "-v", "--", "cat", "in.txt"], cwd=coarse_fs, capture_output=True, text=True)
    assert "casher: hit" in again.stderr and again.stdout == "settled"


def test_input_rewritten_right_after_recording(pair: Pair) -> None:
    for i in range(20):
        pair.both(write("in.txt", f"x{i:03}"))
        pair.run("cat", "in.txt")
        pair.both(write("in.txt", f"y{i:03}"))
        assert pair.run("cat", "in.txt").stdout == f"y{i:03}"


# 5. Kernel-faithful paths -------------------------------------------------------


def test_dotdot_after_a_symlink_is_resolved_like_the_kernel(pair: Pair) -> None:
    pair.both(write("real/sub/.keep", ""))
    pair.both(write("real/cfg", "physical\n"))
    pair.both(write("cfg", "lexical\n"))
    pair.both(lambda r: os.symlink("real/sub", r / "link"))
    cmd = ("cat", "link/../cfg")
    assert pair.run(*cmd).stdout == "physical\n"
    pair.both(write("real/cfg", "physical, edited\n"))
    assert pair.run(*cmd).stdout == "physical, edited\n"
    pair.both(write("cfg", "lexical, edited\n"))
    assert pair.run(*cmd).hit


def test_repointing_the_link_before_dotdot(pair: Pair) -> None:
    pair.both(write("a/sub/.keep", ""))
    pair.both(write("b/sub/.keep", ""))
    pair.both(write("a/cfg", "in a\n"))
    pair.both(write("b/cfg", "in b\n"))
    pair.both(lambda r: os.symlink("a/sub", r / "link"))
    cmd = ("sh", "-c", "cat link/../cfg")
    pair.run(*cmd)
    assert pair.run(*cmd).hit

    def repoint(target: str):
        def change(r: Path):
            (r / "link").unlink()
            os.symlink(target, r / "link")

        return change

    pair.both(repoint("b/sub"))
    assert pair.run(*cmd).stdout == "in b\n"
    pair.both(repoint("nowhere/sub"))
    assert pair.run(*cmd, flags=("--cache-failures",)).stdout == ""
    pair.both(repoint("a/sub"))
    assert pair.run(*cmd).stdout == "in a\n"


def test_directory_mtime_shown_by_stat(pair: Pair) -> None:
    pair.both(write("d/x", "1"))
    pair.both(lambda r: os.utime(r / "d", (1_000_000_000, 1_000_000_000)))
    cmd = ("stat", "-c", "%n %Y", "d")
    pair.run(*cmd)
    assert pair.run(*cmd).hit
    pair.both(lambda r: os.utime(r / "d", (1_100_000_000, 1_100_000_000)))
    assert pair.run(*cmd).stdout == "d 1100000000\n"
    # A command writing into the directory it stats still hits.
    write_in = ("sh", "-c", "stat -c %F . ; echo x > out")
    pair.run(*write_in)
    pair.run(*write_in)
    assert pair.run(*write_in).hit


def test_proc_self_cwd_alias_is_an_ordinary_input(pair: Pair) -> None:
    pair.both(write("f", "one\n"))
    cmd = ("cat", "/proc/self/cwd/f")
    pair.run(*cmd)
    pair.both(write("f", "two\n"))
    assert pair.run(*cmd).stdout == "two\n"


def test_files_under_dev_shm_and_run_are_inputs(pair: Pair, tmp_path: Path) -> None:
    for base in ("/dev/shm", "/run"):
        shared = Path(base) / f"casher-test-{os.getpid()}-{tmp_path.name}"
        shared.write_text("first\n")
        try:
            cmd = ("sh", "-c", f"cat {shared} > copy; cat copy")
            pair.run(*cmd)
            shared.write_text("second\n")
            assert pair.run(*cmd).stdout == "second\n"
            assert pair.run(*cmd).hit
        finally:
            shared.unlink(missing_ok=True)


def test_files_written_under_dev_shm_are_outputs(casher_bin: Path, cache_dir: Path, tmp_path: Path) -> None:
    shared = Path("/dev/shm") / f"casher-test-{os.getpid()}-{tmp_path.name}"
    try:
        out = subprocess.run(
            [str(casher_bin), "run", "--", "sh", "-c", f"echo data > {shared}"],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )
        key = subprocess.run(
            [str(casher_bin), "run", "--explain", "--", "sh", "-c", f"echo data > {shared}"],
            cwd=tmp_path, capture_output=True, text=True,
        ).stdout.split()[1]
        show = subprocess.run([str(casher_bin), "cache", "show", key, "--json"], capture_output=True, text=True, check=True)
        assert str(shared) in show.stdout, (out.stderr, show.stdout)
    finally:
        shared.unlink(missing_ok=True)


# 6. Inputs that are not files ---------------------------------------------------


def test_fifo_input_is_not_cached(pair: Pair) -> None:
    pair.both(lambda r: os.mkfifo(r / "p"))
    for word in ("one", "two"):
        writers = []
        for root in (pair.plain, pair.cached):
            def feed(path=root / "p", word=word):
                with open(path, "w") as f:
                    f.write(word + "\n")

            t = threading.Thread(target=feed)
            t.start()
            writers.append(t)
        out = pair.run("cat", "p")
        for t in writers:
            t.join()
        assert out.stdout == word + "\n"
        assert "not cached" in out.notes and "FIFO" in out.notes


class Server:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.reply = b"first"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.reply)


def test_loopback_connection_is_not_cached_unless_allowed(pair: Pair) -> None:
    server = Server()
    port = server.sock.getsockname()[1]
    code = f"import socket; s = socket.create_connection(('127.0.0.1', {port})); print(s.recv(100).decode())"
    out = pair.run(sys.executable, "-c", code)
    assert out.stdout == "first\n" and "not cached" in out.notes and "network" in out.notes
    server.reply = b"second"
    assert pair.run(sys.executable, "-c", code).stdout == "second\n"
    # Opted in: cached.
    pair.run(sys.executable, "-c", code, flags=("--allow-network",))
    server.reply = b"third"
    again = subprocess.run(
        [str(pair.bin), "run", "-v", "--allow-network", "--", sys.executable, "-c", code],
        cwd=pair.cached, capture_output=True, text=True,
    )
    assert "casher: hit" in again.stderr and again.stdout == "second\n"
    server.sock.close()


def test_unix_socket_connection_is_not_cached(pair: Pair, tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen()

    def serve():
        for _ in range(2):
            conn, _ = srv.accept()
            with conn:
                conn.sendall(b"hello")

    threading.Thread(target=serve, daemon=True).start()
    code = f"import socket; s = socket.socket(socket.AF_UNIX); s.connect({str(path)!r}); print(s.recv(10).decode())"
    out = pair.run(sys.executable, "-c", code)
    assert "not cached" in out.notes and "socket" in out.notes
    srv.close()


def test_inherited_descriptor_is_not_cached(pair: Pair, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for text in ("one\n", "two\n"):
        data.write_text(text)
        fd = os.open(data, os.O_RDONLY)
        try:
            cmd = [sys.executable, "-c", f"import os; print(os.read({fd}, 100).decode(), end='')"]
            plain = subprocess.run(cmd, pass_fds=(fd,), capture_output=True, text=True)
            os.lseek(fd, 0, os.SEEK_SET)
            cached = subprocess.run(
                [str(pair.bin), "run", "--", *cmd], cwd=pair.cached,
                pass_fds=(fd,), capture_output=True, text=True,
            )
        finally:
            os.close(fd)
        assert plain.stdout == cached.stdout == text
        assert "not cached" in cached.stderr and "inherited" in cached.stderr


def test_openat2_resolve_in_root_is_not_cached(pair: Pair) -> None:
    pair.both(write("f", "data\n"))
    code = (
        "import ctypes, os, struct\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "how = struct.pack('QQQ', os.O_RDONLY, 0, 0x10)\n"
        "fd = libc.syscall(437, -100, b'f', how, len(how))\n"
        "print(os.read(fd, 100).decode(), end='')\n"
    )
    out = pair.run(sys.executable, "-c", code)
    assert out.stdout == "data\n" and "not cached" in out.notes


# 7. Environment and umask --------------------------------------------------------


def test_path_order_chooses_the_program(pair: Pair) -> None:
    for d, word in (("d1", "one"), ("d2", "two")):
        pair.both(write(f"{d}/tool", f"#!/bin/sh\necho {word}\n", 0o755))
    base = os.environ["PATH"]
    env1 = {"PATH": f"{pair.cached}/d1:{pair.cached}/d2:{base}"}
    plain1 = {"PATH": f"{pair.plain}/d1:{pair.plain}/d2:{base}"}
    # Each tree has its own PATH (absolute dirs): run each side with its own.
    for env_c, env_p, word in ((env1, plain1, "one"),):
        out = subprocess.run([str(pair.bin), "run", "--", "tool"], cwd=pair.cached, env=dict(os.environ, **env_c), capture_output=True, text=True)
        assert out.stdout == word + "\n"
    env2 = {"PATH": f"{pair.cached}/d2:{pair.cached}/d1:{base}"}
    out = subprocess.run([str(pair.bin), "run", "--", "tool"], cwd=pair.cached, env=dict(os.environ, **env2), capture_output=True, text=True)
    assert out.stdout == "two\n"
    # Switching back is a hit; --explain of the other names PATH.
    out = subprocess.run([str(pair.bin), "run", "-v", "--", "tool"], cwd=pair.cached, env=dict(os.environ, **env1), capture_output=True, text=True)
    assert out.stdout == "one\n" and "casher: hit" in out.stderr
    env3 = {"PATH": f"{pair.cached}/d2:{base}"}
    explain = pair.explain("tool", env=env3)
    assert explain.returncode == 1 and "PATH" in explain.stdout, explain.stdout


def test_locale_and_selected_env_values_are_checked(pair: Pair) -> None:
    cmd = ("sh", "-c", "echo ${LC_ALL:-unset} ${MODE:-none}")
    pair.run(*cmd)
    assert pair.run(*cmd, env={"LC_ALL": "C"}).stdout == "C none\n"
    out = pair.run(*cmd, env={"LC_ALL": "C", "MODE": "fast"}, flags=("--env", "MODE"))
    assert out.stdout == "C fast\n"
    assert pair.run(*cmd, env={"LC_ALL": "C", "MODE": "slow"}, flags=("--env", "MODE")).stdout == "C slow\n"
    explain = subprocess.run(
        [str(pair.bin), "run", "--explain", "--env", "MODE", "--", *cmd],
        cwd=pair.cached, env=dict(os.environ, LC_ALL="C", MODE="other"), capture_output=True, text=True,
    )
    assert explain.returncode == 1 and "MODE" in explain.stdout, explain.stdout


def test_umask_is_part_of_the_lookup(pair: Pair) -> None:
    cmd = ("sh", "-c", "rm -f made; touch made; stat -c %a made")
    assert pair.run(*cmd, umask=0o022).stdout == "644\n"
    assert pair.run(*cmd, umask=0o077).stdout == "600\n"


# 8. Writes through a symlink that already existed --------------------------------


def test_write_through_existing_symlink_recreates_the_target(pair: Pair) -> None:
    pair.both(lambda r: os.symlink("target.txt", r / "out"))
    cmd = ("sh", "-c", "echo hi > out")
    pair.run(*cmd)
    pair.both(lambda r: (r / "target.txt").unlink())
    out = pair.run(*cmd)
    assert out.hit, out.notes
    assert (pair.cached / "target.txt").read_text() == "hi\n"


# 9. Outputs in production order ----------------------------------------------------


def test_outputs_are_recorded_in_the_order_they_were_produced(pair: Pair) -> None:
    import json

    cmd = ("sh", "-c", "echo 1 > z.o; echo 2 > a.o; cat z.o a.o > m.a")
    pair.run(*cmd)
    key = pair.explain(*cmd).stdout.split()[1]
    show = subprocess.run([str(pair.bin), "cache", "show", key, "--json"], capture_output=True, text=True, check=True)
    outputs = [Path(o["path"]).name for o in json.loads(show.stdout)["variants"][0]["outputs"]]
    assert outputs == ["z.o", "a.o", "m.a"]


# 10. Nested and refused tracing, exit codes ----------------------------------------


def test_nested_casher_runs_plainly_and_the_outer_one_records(pair: Pair) -> None:
    cmd = (str(pair.bin), "run", "--", "sh", "-c", "echo inner > f; echo printed")
    first = subprocess.run([str(pair.bin), "run", "--", *cmd], cwd=pair.cached, capture_output=True, text=True)
    assert first.returncode == 0 and first.stdout == "printed\n"
    assert first.stderr.count("itself being traced") == 1
    (pair.cached / "f").unlink()
    second = subprocess.run([str(pair.bin), "run", "-v", "--", *cmd], cwd=pair.cached, capture_output=True, text=True)
    assert "casher: hit" in second.stderr and (pair.cached / "f").read_text() == "inner\n"


def test_under_strace_the_command_runs_plainly(pair: Pair) -> None:
    if not shutil.which("strace"):
        pytest.fail("strace is required (apt-get install strace)")
    out = subprocess.run(
        ["strace", "-f", "-o", "/dev/null", str(pair.bin), "run", "--", "sh", "-c", "echo hi; exit 3"],
        cwd=pair.cached, capture_output=True, text=True,
    )
    assert out.returncode == 3 and out.stdout == "hi\n" and "uncached" in out.stderr


def test_explain_exit_codes_and_command_not_found(pair: Pair) -> None:
    assert pair.explain("echo", "x").returncode == 1
    pair.run("echo", "x")
    assert pair.explain("echo", "x").returncode == 0
    missing = pair.run("sh", "-c", "exec no-such-command-xyz")
    assert missing.hit is False
    out = subprocess.run([str(pair.bin), "run", "--", "no-such-command-xyz"], cwd=pair.cached, capture_output=True, text=True)
    assert out.returncode == 127, out.stderr


def test_unsearchable_path_directory_does_not_make_every_run_miss(tmp_path: Path, casher_bin: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.fail("needs root and setpriv to run as another user")
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="casher-nobody-"))
    (home / "locked").mkdir(parents=True)
    (home / "cache").mkdir()
    work = home / "work"
    work.mkdir()
    for p in (home, home / "cache", work, home / "locked"):
        os.chown(p, 65534, 65534)
    (home / "locked").chmod(0o700)
    env = dict(os.environ, PATH=f"{home}/locked:/usr/bin:/bin", CASHER_DIR=str(home / "cache"), HOME=str(home))
    run = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(casher_bin), "run", "-v", "--", "echo", "hi"]
    first = subprocess.run(run, cwd=work, env=env, capture_output=True, text=True)
    assert first.stdout == "hi\n", first.stderr
    second = subprocess.run(run, cwd=work, env=env, capture_output=True, text=True)
    shutil.rmtree(home, ignore_errors=True)
    assert "casher: hit" in second.stderr, second.stderr


# 11. Background children ----------------------------------------------------------


def test_background_children_do_not_hold_the_run(pair: Pair, tmp_path: Path) -> None:
    script = "echo started; (sleep 3; echo late > late.txt) >/dev/null 2>&1 & echo done"
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        start = time.monotonic()
        proc = subprocess.run([str(pair.bin), "run", "--", "sh", "-c", script], cwd=pair.cached, stdout=out, stderr=err)
        elapsed = time.monotonic() - start
    assert proc.returncode == 0 and elapsed < 2.0, elapsed
    assert (tmp_path / "out").read_text() == "started\ndone\n"
    assert "left processes running" in (tmp_path / "err").read_text()
    # The background process kept running (untouched by casher) and finished.
    deadline = time.monotonic() + 10
    while not (pair.cached / "late.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (pair.cached / "late.txt").read_text() == "late\n"
    # Not cached: the next run runs again.
    (pair.cached / "late.txt").unlink()
    again = subprocess.run([str(pair.bin), "run", "-v", "--", "sh", "-c", script], cwd=pair.cached, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert "casher: hit" not in again.stderr


def test_the_cpus_a_command_may_use_are_its_own_and_part_of_its_context(pair: Pair) -> None:
    """The tracer pins a run to one CPU, but the command is told the CPUs
    its caller may use (`nproc` answers as untraced), and a caller with
    other CPUs (`taskset`) does not get the other one's answer."""
    cpus = sorted(os.sched_getaffinity(0))
    pair.run("nproc")
    assert pair.run("nproc").hit
    if len(cpus) > 1:
        narrow = pair.run("taskset", "-c", str(cpus[0]), "nproc")
        assert narrow.stdout.strip() == "1" and not narrow.hit
        assert pair.run("nproc").hit, "switching back keeps the first result"

"""One named end-to-end test per class of `casher run` unsoundness (issue 9).

Every test runs the same steps plainly in one tree and under `casher run` (a
shared cache) in an identical tree, and compares stdout, stderr, exit status
and the trees (tests/difftree.py). Inputs that cannot be observed faithfully
(FIFO, socket, network, inherited descriptor) may instead be refused as
uncacheable, which must be said on stderr (`equal_or_refused`).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from difftree import PYTHON, Cmd, Outcome, Pair

# --------------------------------------------------------------------------- helpers


@pytest.fixture
def pair(tmp_path: Path, casher_bin: Path) -> Pair:
    stamped: dict[str, int] = {}

    def fair(rel: str) -> bool:
        """A path whose mtime the test set identically in both trees and that
        the plain run did not rewrite since (a command's writes happen at
        different moments in the two trees)."""
        if rel not in stamped:
            return False
        try:
            return (p.plain / rel).lstat().st_mtime_ns == stamped[rel]
        except FileNotFoundError:
            return False

    p = Pair(tmp_path, casher_bin, fair=fair)
    p.stamped = stamped
    p.stamp = time.time_ns() - 10**9
    for tree in (p.plain, p.cached):
        tree.mkdir(parents=True)
    return p


def write(pair: Pair, rel: str, data: str | bytes, mode: int = 0o644, stamp: int | None = None) -> None:
    """The same file in both trees (in place when it exists), with the same mtime."""
    stamp = stamp or time.time_ns()
    for tree in (pair.plain, pair.cached):
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        p.chmod(mode)
        os.utime(p, ns=(stamp, stamp))
    pair.stamped[rel] = stamp


def both(pair: Pair, fn) -> None:
    pair.both(fn)


def same(pair: Pair, cmd: Cmd, step: str = "", env: dict | None = None, wrapped: bool = False) -> tuple[Outcome, Outcome]:
    a, b, diffs = pair.run(cmd, env, wrapped)
    assert not diffs, f"step {step!r}: `{cmd.name}` differs from a plain run:\n" + "\n".join(diffs)
    return a, b


def sh(name: str, script: str, **kw) -> Cmd:
    return Cmd(name, ("sh", "-c", script), **kw)


def equal_or_refused(pair: Pair, cmd: Cmd, provide, values=("first", "second"), wrapped: bool = False) -> None:
    """Run with the input at `values[0]` twice, then at `values[1]`; every run must
    equal the plain one. If the second run was not a hit, casher did not cache
    the first: then it must have said so on stderr."""
    runs = []
    for step, value in enumerate((values[0], values[0], values[1])):
        with provide(pair.plain, value):
            a = pair.run_plain(cmd, wrapped=wrapped)
        with provide(pair.cached, value):
            b = pair.run_cached(cmd, wrapped=wrapped)
        diffs = pair.differences(cmd.name, a, b)
        assert not diffs, f"run {step + 1} (input {value!r}) differs from a plain run:\n" + "\n".join(diffs)
        assert a.stdout, f"the plain run printed nothing, the test is broken: {a}"
        runs.append(b)
    if not runs[1].hit:
        assert runs[0].notes, (
            "the run was not cached, yet casher said nothing about why on stderr "
            f"(casher lines: {runs[0].casher_lines})"
        )


# --------------------------------------------------------------------------- preconditions on outputs


def test_counter_file_read_then_written(pair: Pair) -> None:
    cmd = sh("counter", 'n=$(cat counter 2>/dev/null || echo 0); echo $((n+1)) > counter; echo run $((n+1))')
    for i in range(3):
        same(pair, cmd, f"run {i + 1}")


def test_config_created_if_missing_then_edited_by_the_user(pair: Pair) -> None:
    write(pair, "default.cfg", "default\n")
    cmd = sh("config", "[ -f my.cfg ] || cp default.cfg my.cfg; cat my.cfg")
    same(pair, cmd, "first run creates my.cfg")
    write(pair, "my.cfg", "edited by the user\n")
    same(pair, cmd, "after the user's edit")
    both(pair, lambda t: (t / "my.cfg").unlink())
    same(pair, cmd, "after my.cfg was deleted")


# --------------------------------------------------------------------------- metadata


def test_a_truncated_output_then_created_afresh_gets_the_creation_mode(pair: Pair) -> None:
    """Truncating keeps an existing file's mode; creating gives the open's
    mode less the umask: recorded over an existing 0644 file, the entry must
    not answer for a run that creates the file under umask 077."""
    write(pair, "out", "old\n", mode=0o644)
    cmd = sh("umask", "umask 077; echo x > out; stat -c %a out")
    same(pair, cmd, "out existed")
    both(pair, lambda t: (t / "out").unlink())
    same(pair, cmd, "out absent: created under the umask")
    same(pair, cmd, "again")


def test_chmod_x_changes_test_x(pair: Pair) -> None:
    write(pair, "f", "#!/bin/sh\n")
    cmd = sh("x", '[ -x f ] && echo executable || echo "not executable"')
    same(pair, cmd, "before chmod")
    both(pair, lambda t: (t / "f").chmod(0o755))
    same(pair, cmd, "after chmod +x")
    both(pair, lambda t: (t / "f").chmod(0o644))
    same(pair, cmd, "after chmod -x")


def test_extended_attributes_a_command_sets_are_there_after_every_run(pair: Pair) -> None:
    """`setxattr` is no write casher records or restores: a hit would give
    the file without its attribute. Every run must leave what a plain run
    leaves (the command is not cached, and says why)."""
    try:
        os.setxattr(pair.plain, "user.probe", b"1")
    except OSError as exc:
        pytest.skip(f"no user extended attributes here ({exc})")
    script = "import os; open('out', 'w').write('x'); os.setxattr('out', 'user.tag', b'v'); print('tagged')"
    cmd = Cmd("xattr", (sys.executable, "-c", script))
    for step in ("first run", "second run"):
        both(pair, lambda t: (t / "out").unlink(missing_ok=True))
        _, cached = same(pair, cmd, step)
        assert os.listxattr(pair.cached / "out") == os.listxattr(pair.plain / "out") == ["user.tag"], step
    assert not cached.hit and cached.notes, "not cached, and said why"


def test_an_extended_attribute_read_is_not_answered_from_the_cache_after_it_changed(pair: Pair) -> None:
    """The value of a `user.*` attribute is no recorded input: a command
    that reads one must print the attribute's new value after it changed
    (it is not cached, and says why)."""
    write(pair, "t.txt", "same\n")
    try:
        os.setxattr(pair.plain / "t.txt", "user.a", b"v1")
    except OSError as exc:
        pytest.skip(f"no user extended attributes here ({exc})")
    cmd = Cmd("getxattr", (sys.executable, "-c", "import os; print(os.getxattr('t.txt', 'user.a'))"))
    for value in (b"v1", b"v1", b"v2"):
        both(pair, lambda t: os.setxattr(t / "t.txt", "user.a", value))
        _, cached = same(pair, cmd, f"attribute {value!r}")
    assert not cached.hit and cached.notes, "not cached, and said why"


def test_stat_mtime_after_touch(pair: Pair) -> None:
    write(pair, "f", "same content\n", stamp=pair.stamp)
    cmd = Cmd("stat", ("stat", "-c", "%n %y", "f"))
    same(pair, cmd, "before touch")
    stamp = time.time_ns()
    both(pair, lambda t: os.utime(t / "f", ns=(stamp, stamp)))
    pair.stamped["f"] = stamp
    same(pair, cmd, "after touch (same content)")


def test_ls_l_after_chmod(pair: Pair) -> None:
    write(pair, "data/a", "a\n", stamp=pair.stamp)
    write(pair, "data/b", "b\n", stamp=pair.stamp)
    both(pair, lambda t: os.utime(t / "data", ns=(pair.stamp, pair.stamp)))
    pair.stamped["data"] = pair.stamp
    cmd = Cmd("ls", ("ls", "-l", "--time-style=+%s", "data"))
    same(pair, cmd, "before chmod")
    both(pair, lambda t: (t / "data/a").chmod(0o600))
    same(pair, cmd, "after chmod 600")


def test_find_type_f_after_a_file_became_a_directory(pair: Pair) -> None:
    write(pair, "d/x", "x\n")
    write(pair, "d/y", "y\n")
    cmd = sh("find", "find d -type f | sort")
    same(pair, cmd, "before")

    def to_dir(t: Path) -> None:
        (t / "d/y").unlink()
        (t / "d/y").mkdir()

    both(pair, to_dir)
    same(pair, cmd, "after d/y became a directory")


def test_readlink_after_repoint_to_an_equal_content_file(pair: Pair) -> None:
    write(pair, "one.txt", "same\n")
    write(pair, "two.txt", "same\n")
    both(pair, lambda t: os.symlink("one.txt", t / "link"))
    cmd = sh("readlink", "readlink link; cat link")
    same(pair, cmd, "link -> one.txt")

    def repoint(t: Path) -> None:
        (t / "link").unlink()
        os.symlink("two.txt", t / "link")

    both(pair, repoint)
    same(pair, cmd, "link -> two.txt (equal content)")


def test_dangling_symlink_appearing(pair: Pair) -> None:
    write(pair, "x", "x\n")
    cmd = sh("dangling", '[ -L maybe ] && echo "link to $(readlink maybe)" || echo none; cat x')
    same(pair, cmd, "no link")
    both(pair, lambda t: os.symlink("nowhere", t / "maybe"))
    same(pair, cmd, "a dangling link appeared")


def test_tar_archives_mtimes_and_modes(pair: Pair) -> None:
    write(pair, "data/f1", "one\n", stamp=pair.stamp)
    write(pair, "data/f2", "two\n", stamp=pair.stamp)
    both(pair, lambda t: os.utime(t / "data", ns=(pair.stamp, pair.stamp)))
    pair.stamped["data"] = pair.stamp
    cmd = sh("tar", "tar cf out.tar data && tar tvf out.tar --full-time")
    same(pair, cmd, "first")
    stamp = time.time_ns()
    both(pair, lambda t: os.utime(t / "data/f1", ns=(stamp, stamp)))
    pair.stamped["data/f1"] = stamp
    same(pair, cmd, "after touch data/f1")
    both(pair, lambda t: (t / "data/f2").chmod(0o755))
    same(pair, cmd, "after chmod +x data/f2")


def test_make_after_touch_main_c_and_a_new_shadowing_header(pair: Pair) -> None:
    pair.build()  # the difftree project: proj/{Makefile,main.c,util.c,inc/config.h}, empty proj/inc0
    make, app = Cmd("make", ("make",), cwd="proj"), sh("app", "./app", cwd="proj")
    for tree in (pair.plain, pair.cached):  # the first build, plainly (not this test's subject)
        subprocess.run(["make"], cwd=tree / "proj", env=pair.env(tree), check=True, capture_output=True)
    same(pair, make, "make when up to date (recorded)")
    same(pair, app, "run app")
    stamp = time.time_ns()

    def shadow_and_touch(t: Path) -> None:
        (t / "proj/inc0/config.h").write_text("#define VALUE 42\n")
        os.utime(t / "proj/main.c", ns=(stamp, stamp))

    both(pair, shadow_and_touch)
    same(pair, make, "after touch main.c + new proj/inc0/config.h")
    assert not pair.make_q(), pair.make_q()
    same(pair, app, "app after the rebuild")


# --------------------------------------------------------------------------- paths


def test_dotdot_after_a_symlink_is_resolved_physically(pair: Pair) -> None:
    write(pair, "cfg", "lexical (wrong)\n")
    write(pair, "sub/cfg", "physical v1\n")
    both(pair, lambda t: (t / "sub/inner").mkdir())
    both(pair, lambda t: os.symlink("sub/inner", t / "link"))
    cmd = sh("dotdot", "cat link/../cfg; echo w > link/../written")
    same(pair, cmd, "first")
    write(pair, "sub/cfg", "physical v2 (longer)\n")
    same(pair, cmd, "after editing sub/cfg")
    both(pair, lambda t: (t / "sub/written").unlink())
    same(pair, cmd, "after deleting the output sub/written")


def test_proc_self_cwd_paths(pair: Pair) -> None:
    write(pair, "x", "x v1\n")
    cmd = sh("proccwd", "cat /proc/self/cwd/x; cat /proc/self/cwd/x > /proc/self/cwd/y")
    same(pair, cmd, "first")
    write(pair, "x", "x v2\n")
    same(pair, cmd, "after editing x")
    both(pair, lambda t: (t / "y").unlink())
    same(pair, cmd, "after deleting the output y")


@pytest.fixture
def shm_dirs():
    base = Path("/dev/shm")
    if not base.is_dir():
        pytest.fail("/dev/shm is not available on this machine")
    dirs = {side: base / f"casher-difftest-{os.getpid()}-{side}" for side in ("plain", "cached")}
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    yield dirs
    for d in dirs.values():
        shutil.rmtree(d, ignore_errors=True)


def test_files_under_dev_shm_are_inputs_and_outputs(pair: Pair, shm_dirs: dict) -> None:
    def put(name: str, data: str) -> None:
        for d in shm_dirs.values():
            (d / name).write_text(data)

    def shm_state() -> dict:
        return {side: {p.name: p.read_bytes() for p in d.iterdir()} for side, d in shm_dirs.items()}

    d = f"/dev/shm/casher-difftest-{os.getpid()}-{{side}}"
    cmd = sh("shm", f"cat {d}/in; cp {d}/in {d}/out")
    put("in", "shm v1\n")
    same(pair, cmd, "first")
    put("in", "shm v2\n")
    same(pair, cmd, "after editing /dev/shm/.../in")
    for dd in shm_dirs.values():
        (dd / "out").unlink()
    same(pair, cmd, "after deleting /dev/shm/.../out")
    state = shm_state()
    assert state["plain"] == state["cached"], f"/dev/shm outputs differ: {state}"


# --------------------------------------------------------------------------- inputs that are not files


def test_fifo_input(pair: Pair) -> None:
    both(pair, lambda t: os.mkfifo(t / "fifo"))

    @contextlib.contextmanager
    def provide(tree: Path, value: str):
        path = tree / "fifo"

        def writer() -> None:
            with open(path, "w") as f:  # blocks until a reader opens the FIFO
                f.write(value + "\n")

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        try:
            yield
        finally:
            th.join(0.5)
            if th.is_alive():  # nobody read the FIFO (a hit): unblock the writer
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                th.join(5)
                os.close(fd)

    equal_or_refused(pair, Cmd("fifo", ("cat", "fifo"), timeout=20), provide)


def test_unix_socket_input(pair: Pair) -> None:
    @contextlib.contextmanager
    def provide(tree: Path, value: str):
        path = tree / "sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(str(path))
        srv.listen(1)
        srv.settimeout(20)

        def serve() -> None:
            with contextlib.suppress(OSError):
                conn, _ = srv.accept()
                conn.sendall(value.encode())
                conn.close()

        th = threading.Thread(target=serve, daemon=True)
        th.start()
        try:
            yield
        finally:
            # Nobody connected (a hit): unblock accept(). The thread may also be
            # alive only because it has not yet returned after serving the
            # command: then nobody accepts this connection, so the wait is bounded.
            if th.is_alive():
                with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as c:
                    c.settimeout(5)
                    c.connect(str(path))
                    c.recv(100)
            th.join(5)
            srv.close()

    code = "import socket; s = socket.socket(socket.AF_UNIX); s.connect('sock'); print(s.recv(100).decode())"
    equal_or_refused(pair, Cmd("unix", (PYTHON, "-S", "-c", code), timeout=30), provide)


def test_loopback_tcp_input(pair: Pair) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    current = {"value": ""}
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(current["value"].encode())

    th = threading.Thread(target=serve, daemon=True)
    th.start()

    @contextlib.contextmanager
    def provide(tree: Path, value: str):
        current["value"] = value
        yield

    code = f"import socket; s = socket.create_connection(('127.0.0.1', {port})); print(s.recv(100).decode())"
    try:
        equal_or_refused(pair, Cmd("tcp", (PYTHON, "-S", "-c", code), timeout=30), provide)
    finally:
        stop.set()
        th.join(5)
        srv.close()


def test_inherited_descriptor_input(pair: Pair) -> None:
    @contextlib.contextmanager
    def provide(tree: Path, value: str):
        (tree / "in.txt").write_text(value + "\n")
        yield

    cmd = Cmd("fd3", ("sh", "-c", "{casher_run} sh -c 'cat <&3' 3<in.txt"))
    equal_or_refused(pair, cmd, provide, values=("fd v1", "fd v2 (longer)"), wrapped=True)


# --------------------------------------------------------------------------- environment


def make_tool(pair: Pair, rel: str, says: str) -> None:
    write(pair, rel, f"#!/bin/sh\necho {says}\n", mode=0o755)


def test_path_reordered(pair: Pair) -> None:
    make_tool(pair, "p1/tool", "from p1")
    make_tool(pair, "p2/tool", "from p2")
    cmd = sh("tool", "tool")
    same(pair, cmd, "p1 first", env={"PATH": "{tree}/p1:{tree}/p2:/usr/bin:/bin"})
    same(pair, cmd, "p2 first", env={"PATH": "{tree}/p2:{tree}/p1:/usr/bin:/bin"})


def test_another_virtualenv_activated(pair: Pair, tmp_path: Path) -> None:
    venvs = {}
    for name in ("venv-a", "venv-b"):
        venvs[name] = tmp_path / name
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venvs[name])], check=True)
    code = "import os, sys; print(os.path.basename(sys.prefix))"
    cmd = Cmd("venv", ("sh", "-c", f"python -c '{code}'"))
    for name, venv in [*venvs.items(), *venvs.items()]:
        env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "VIRTUAL_ENV": str(venv)}
        a, _ = same(pair, cmd, f"{name} activated", env=env)
        assert a.stdout.decode().strip() == name


def test_tz_change(pair: Pair) -> None:
    cmd = Cmd("tz", ("date", "-d", "@0", "+%H:%M %Z"))
    for tz in ("UTC", "JST-9", "UTC"):
        same(pair, cmd, f"TZ={tz}", env={"TZ": tz})


def test_lang_change(pair: Pair) -> None:
    cmd = sh("lang", r"printf '\303\251\n' | wc -m")
    for lang in ("C", "C.UTF-8", "C"):
        same(pair, cmd, f"LANG={lang}", env={"LC_ALL": None, "LANG": lang})
    for lc in ("C.UTF-8", "C"):
        same(pair, cmd, f"LC_ALL={lc}", env={"LC_ALL": lc, "LANG": "C"})


# --------------------------------------------------------------------------- racy timestamps


def test_input_rewritten_a_few_ms_after_the_start(pair: Pair) -> None:
    """The run reads in.txt, which is rewritten in place 0-20 ms after casher
    started; a later run must see the new content, never replay the old."""
    rng = random.Random(9)
    cat = (Cmd("racy-cat", ("cat", "in.txt")), "new {:03d}\n")  # rewritten around the run's end
    shapes = [
        cat,
        cat,
        (sh("racy-linger", "cat in.txt; sleep 0.03"), "new {:03d}\n"),  # rewritten while the run lingers
        cat,
        (sh("racy-size", "cat in.txt; sleep 0.01"), "newer {:03d}\n"),  # a size change
    ]
    tries = 120
    stale = []
    for i in range(tries):
        cmd, new = shapes[i % len(shapes)]
        write(pair, "in.txt", f"old {i:03d}\n")
        proc = subprocess.Popen(
            pair.argv(pair.cached, cmd, cached=True, wrapped=False),
            cwd=pair.cached,
            env=pair.env(pair.cached),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, 0.02))
        with open(pair.cached / "in.txt", "w") as f:
            f.write(new.format(i))
        proc.wait(timeout=60)
        with open(pair.plain / "in.txt", "w") as f:
            f.write(new.format(i))
        a, b, diffs = pair.run(cmd)
        if diffs:
            stale.append(f"try {i} ({cmd.name}): plain {a.stdout!r}, cached {b.stdout!r} (hit: {b.hit})")
    assert not stale, f"{len(stale)} of {tries} tries replayed stale output:\n" + "\n".join(stale)


@pytest.fixture
def ext4_128(tmp_path: Path):
    """A loop-mounted ext4 with 128-byte inodes: timestamps have 1-second granularity."""
    if not os.path.exists("/dev/loop-control") or not shutil.which("mkfs.ext4") or os.geteuid() != 0:
        pytest.skip("needs root, /dev/loop-control and mkfs.ext4 for a loop-mounted ext4")
    img, mnt = tmp_path / "ext4.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(img)], check=True, capture_output=True)
    p = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=False, capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"loop devices unavailable: mount -o loop failed: {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def test_same_second_edit_on_ext4_with_1s_timestamps(tmp_path: Path, casher_bin: Path, ext4_128: Path) -> None:
    pair = Pair(ext4_128, casher_bin, cache_dir=tmp_path / "cache", fair=lambda rel: False)
    for tree in (pair.plain, pair.cached):
        tree.mkdir(parents=True)
    probe = ext4_128 / "probe"
    probe.write_text("x")
    assert probe.stat().st_mtime_ns % 10**9 == 0, "the filesystem should have 1-second timestamps"
    cmd = Cmd("cat", ("cat", "in.txt"))
    stale, tried = [], 0
    for _attempt in range(60):
        if tried == 10:
            break
        time.sleep(1.02 - time.time() % 1)  # start just after a second boundary
        second = int(time.time())
        for tree in (pair.plain, pair.cached):
            (tree / "in.txt").write_text(f"a{tried}\n")
        a, b, diffs = pair.run(cmd)
        if diffs:
            stale.append(f"try {tried} (before the edit): plain {a.stdout!r}, cached {b.stdout!r} (hit: {b.hit})")
        for tree in (pair.plain, pair.cached):
            with open(tree / "in.txt", "w") as f:  # same size, in place, same second
                f.write(f"b{tried}\n")
        if int(time.time()) != second or (pair.cached / "in.txt").stat().st_mtime != second:
            continue  # not a same-second edit: try again
        tried += 1
        a, b, diffs = pair.run(cmd)
        if diffs:
            stale.append(f"try {tried}: plain {a.stdout!r}, cached {b.stdout!r} (hit: {b.hit})")
    assert tried == 10, f"only {tried} of 60 attempts managed a same-second edit (machine too loaded?)"
    assert not stale, f"{len(stale)} of 10 same-second edits replayed stale output:\n" + "\n".join(stale)


# --------------------------------------------------------------------------- writes through symlinks


def test_write_through_a_symlink_after_its_target_was_deleted(pair: Pair) -> None:
    both(pair, lambda t: (t / "target").mkdir())
    both(pair, lambda t: os.symlink("target/real.txt", t / "out.txt"))
    cmd = sh("through", "echo data > out.txt; cat out.txt")
    same(pair, cmd, "first (creates target/real.txt through the link)")
    both(pair, lambda t: (t / "target/real.txt").unlink())
    same(pair, cmd, "after target/real.txt was deleted")


# --------------------------------------------------------------------------- restored mtimes


def test_restored_mtimes_keep_make_up_to_date(pair: Pair) -> None:
    pair.build()
    make = Cmd("make", ("make",), cwd="proj")
    same(pair, make, "first build")
    outputs = ("app", "main.o", "util.o", "libz.a")

    def clean(t: Path) -> None:
        for name in outputs:
            (t / "proj" / name).unlink()

    both(pair, clean)
    _, b = same(pair, make, "rebuild after deleting the outputs")
    assert b.hit, f"nothing changed but the outputs: this must be a hit (casher said {b.casher_lines})"
    assert not pair.make_q(), pair.make_q()
    mt = {n: (pair.cached / "proj" / n).stat().st_mtime_ns for n in outputs}
    assert mt["libz.a"] >= mt["util.o"] and mt["app"] >= max(mt["main.o"], mt["libz.a"]), mt
    same(pair, Cmd("make-again", ("make",), cwd="proj", flags=("--no-cache",)), "a plain make afterwards")


# --------------------------------------------------------------------------- nested and refused tracing


def test_nested_casher_run(pair: Pair) -> None:
    write(pair, "in.txt", "v1\n")
    cmd = sh("nested", "{casher_inner} cat in.txt; echo outer")
    _, b = same(pair, cmd, "first")
    assert len(b.notes) == 1, f"the inner run should warn exactly once, casher said: {b.casher_lines}"
    _, b = same(pair, cmd, "second")
    assert b.hit, f"the outer run should have recorded the whole tree: {b.casher_lines}"
    write(pair, "in.txt", "v2 (longer)\n")
    same(pair, cmd, "after editing in.txt")


def test_casher_run_under_strace(pair: Pair) -> None:
    if not shutil.which("strace"):
        pytest.fail("strace is required (make test installs it from Debian's packages)")
    write(pair, "in.txt", "v1\n")
    cmd = Cmd("strace", ("strace", "-f", "-qq", "-o", "/dev/null", "{casher_run}", "cat", "in.txt"))
    _, b = same(pair, cmd, "first", wrapped=True)
    assert len(b.notes) == 1, f"casher should run plainly with exactly one warning, it said: {b.casher_lines}"
    write(pair, "in.txt", "v2 (longer)\n")
    same(pair, cmd, "after editing in.txt", wrapped=True)


# --------------------------------------------------------------------------- background children


def test_background_child_does_not_delay_the_return(pair: Pair) -> None:
    cmd = sh("bg", "sleep 5 </dev/null >/dev/null 2>&1 & echo started")
    a, b = same(pair, cmd, "first")
    assert b.seconds < 3, f"casher waited {b.seconds:.1f}s for a background child (plain: {a.seconds:.1f}s)"


def test_a_run_leaving_a_daemon_is_not_cached(pair: Pair) -> None:
    cmd = sh("daemon", "(sleep 1; echo late > late.txt) </dev/null >/dev/null 2>&1 & echo daemon started")
    for step in ("first", "second"):
        a, b, _ = pair.run(cmd)
        diffs = pair.differences(cmd.name, a, b, trees=False)
        assert not diffs, f"step {step}: differs from a plain run:\n" + "\n".join(diffs)
        assert not b.hit, f"a run that left a daemon behind was cached: {b.casher_lines}"
        assert b.seconds < 3, f"casher waited {b.seconds:.1f}s for the daemon"
        time.sleep(2.5)  # the daemons have written late.txt by now
        a, b = same(pair, Cmd("ls", ("ls",), flags=("--no-cache",)), f"{step}: after the daemon finished")
        both(pair, lambda t: (t / "late.txt").unlink(missing_ok=True))


# --------------------------------------------------------------------------- unnamed files


def test_an_unnamed_temporary_file_is_no_output_and_one_named_later_is(pair: Pair) -> None:
    """`tempfile.TemporaryFile()` opens an unnamed file (`O_TMPFILE`) in the
    temp directory: no path is created, so the run hits the second time
    (the temp directory used to be taken for an output, which no hit may
    restore). A file made that way and then linked into the tree is an
    output, restored on a hit."""
    script = (
        "import ctypes, os, tempfile\n"
        "t = tempfile.TemporaryFile(dir=os.environ.get('TMPDIR'))\n"
        "t.write(b'scratch'); t.seek(0); print(t.read())\n"
        "fd = os.open('.', os.O_TMPFILE | os.O_WRONLY, 0o644)\n"
        "os.write(fd, b'made unnamed, then named\\n')\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "# linkat(fd, '', AT_FDCWD, 'named.txt', AT_EMPTY_PATH)\n"
        "print(libc.linkat(fd, b'', -100, b'named.txt', 0x1000), ctypes.get_errno())\n"
        "print(open('named.txt').read().strip())\n"
    )
    cmd = Cmd("tmpfile", (PYTHON, "-c", "import os; os.path.exists('named.txt') and os.remove('named.txt')\n" + script))
    runs = []
    for i in range(3):  # the first finds no `named.txt`, the later ones do
        _, b = same(pair, cmd, f"run {i + 1}")
        runs.append(b)
    assert runs[2].hit, f"expected a hit: {runs[2].casher_lines}"
    assert not runs[2].notes, runs[2].notes

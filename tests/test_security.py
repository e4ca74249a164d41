"""Security and reliability, end to end with the real `casher` binary:
racing runs, planted symlinks, forged records and pickles, foreign-owned
stores (a second uid through setpriv), interrupted restores, output floods
with an RSS check, and the store maintenance defects of issue 13."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def run(casher_bin: Path, *args: str, cwd: Path, env: dict | None = None, timeout: int = 300, **kw):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [str(casher_bin), *args], cwd=cwd, env=full_env, capture_output=True, timeout=timeout, **kw
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "store-v1" / "entries").rglob("*.var"))


def objects(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "store-v1" / "objects").rglob("*") if p.is_file())


def stats(casher_bin: Path, cache: Path, cwd: Path) -> dict:
    out = run(casher_bin, "cache", "stats", "--json", "--cache-dir", str(cache), cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# --- concurrency ---------------------------------------------------------------


def test_sixteen_identical_runs_racing_on_one_output(casher_bin, cache_dir, work) -> None:
    """16 `casher run -- cp big out` at once, in rounds (misses racing each
    other's writes of `out`, then hits racing each other's restores): none
    dies (SIGBUS was the bug), every output is byte-exact."""
    for round_ in range(5):
        data = os.urandom(2 << 20)
        (work / "big").write_bytes(data)
        # `out` exists, so cp truncates it (a missing `out` makes racing cp's
        # fail with EEXIST on their own, casher or not).
        (work / "out").write_bytes(b"")
        procs = [
            subprocess.Popen(
                [str(casher_bin), "run", "--", "cp", "big", "out"],
                cwd=work,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(16)
        ]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, f"round {round_}: exit {p.returncode}: {err.decode()}"
        assert (work / "out").read_bytes() == data, f"round {round_}: output differs"
        # A hit after the storm restores exactly the same bytes.
        (work / "out").unlink()
        done = run(casher_bin, "run", "--", "cp", "big", "out", cwd=work)
        assert done.returncode == 0, done.stderr
        assert (work / "out").read_bytes() == data
    assert run(casher_bin, "cache", "verify", cwd=work).returncode == 0


# --- restores ------------------------------------------------------------------


def test_planted_symlink_raced_against_restores_writes_nothing_outside(casher_bin, cache_dir, tmp_path, work) -> None:
    """An attacker flips `sub` between a directory and a symlink to a
    directory outside the allowed roots while hits restore `sub/deep/f`.
    The restored content ("RESTORED") never appears outside. (A refused
    restore re-runs the command, which writes "COMMAND" wherever the kernel
    sends it, like a plain run would: that is not casher's write.)"""
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "src").write_text("RESTORED")
    # Many files: the old check-then-write restore had a wide window.
    script = "mkdir -p sub/deep && for i in $(seq 100); do cat src > sub/deep/f$i; done"
    cmd = ["run", "--ignore", str(work / "src"), "--", "sh", "-c", script]
    env = {"CASHER_ALLOWED_ROOTS": "", "HOME": str(work)}
    first = run(casher_bin, *cmd, cwd=work, env=env)
    assert first.returncode == 0, first.stderr
    (work / "src").write_text("COMMAND")
    stop = threading.Event()

    def flip() -> None:
        sub = work / "sub"
        while not stop.is_set():
            shutil.rmtree(sub, ignore_errors=True)
            try:
                os.symlink(outside, sub)
            except OSError:
                pass
            time.sleep(0.0005)
            try:
                os.unlink(sub)
            except OSError:
                pass

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for _ in range(40):
            out = run(casher_bin, *cmd, cwd=work, env=env)
            assert out.returncode >= 0, out.stderr  # the re-run command may fail; casher must not crash
    finally:
        stop.set()
        flipper.join()
    leaked = [p for p in outside.rglob("*") if p.is_file() and p.read_bytes() == b"RESTORED"]
    assert not leaked, leaked


def test_interrupted_restore_leaves_no_temp_files_and_killed_ones_are_cleaned(casher_bin, cache_dir, work) -> None:
    cmd = ["run", "--", "sh", "-c", "head -c 400000000 /dev/zero > big && echo made"]
    assert run(casher_bin, *cmd, cwd=work).returncode == 0

    def temps() -> list[Path]:
        return [p for p in work.iterdir() if p.name.startswith(".casher-tmp-")]

    def start_hit_and_wait_for_temp() -> subprocess.Popen | None:
        (work / "big").unlink(missing_ok=True)
        proc = subprocess.Popen([str(casher_bin), *cmd], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if temps():
                return proc
            time.sleep(0.0005)
        proc.communicate()
        return None

    # SIGINT mid-restore: the temp file goes, the process dies of SIGINT.
    for _ in range(5):
        proc = start_hit_and_wait_for_temp()
        if proc is not None:
            break
    if proc is None:
        pytest.skip("restores finish too fast to interrupt here (reflinks?)")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode in (-signal.SIGINT, 130), proc.returncode
    assert temps() == []

    # SIGKILL mid-restore leaves a recognizable temp file: the next restore
    # from this store removes it.
    for _ in range(5):
        proc = start_hit_and_wait_for_temp()
        if proc is not None:
            break
    assert proc is not None
    proc.kill()
    proc.communicate(timeout=60)
    assert temps(), "SIGKILL should have left the temp file"
    (work / "big").unlink(missing_ok=True)
    done = run(casher_bin, *cmd, cwd=work)
    assert done.returncode == 0
    assert temps() == []
    assert (work / "big").stat().st_size == 400_000_000

    # ... and `casher cache gc` does too.
    proc = start_hit_and_wait_for_temp()
    if proc is not None:
        proc.kill()
        proc.communicate(timeout=60)
        assert temps()
        gc = run(casher_bin, "cache", "gc", cwd=work)
        assert gc.returncode == 0, gc.stderr
        assert temps() == []


# --- trust ---------------------------------------------------------------------


def test_gadget_pickle_planted_in_a_record_is_never_unpickled(cache_dir, tmp_path) -> None:
    """Replace a `@cached` value inside its record with a `__reduce__`
    gadget of the same length and fix up the old unkeyed checksum: the record
    no longer authenticates, so it is ignored (a miss, counted) and the
    gadget never runs."""
    project = tmp_path / "proj"
    project.mkdir()
    marker = tmp_path / "PWNED"
    (project / "job.py").write_text(
        textwrap.dedent(
            """
            import logging, sys
            from casher import cached

            @cached
            def value():
                print("computing", file=sys.stderr)
                return "A" * 300

            if __name__ == "__main__":
                assert value() == "A" * 300
            """
        )
    )

    def call() -> str:
        proc = subprocess.run(
            [sys.executable, "job.py"], cwd=project, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    assert "computing" in call()
    records = entries(cache_dir)
    assert len(records) == 1
    record = records[0].read_bytes()
    original = pickle.dumps("A" * 300, protocol=5)
    at = record.find(original)
    assert at >= 0, "the value is not inline in the record (format changed?)"

    class Gadget:
        def __init__(self, cmd: str) -> None:
            self.cmd = cmd

        def __reduce__(self):
            return (os.system, (self.cmd,))

    gadget = b""
    for pad in range(400):
        gadget = pickle.dumps(Gadget(f"touch {marker} #" + "x" * pad), protocol=5)
        if len(gadget) == len(original):
            break
    assert len(gadget) == len(original)
    forged = record[:at] + gadget + record[at + len(original) :]
    try:
        import blake3  # type: ignore[import-not-found]

        forged = forged[:-32] + blake3.blake3(forged[:-32]).digest()
    except ImportError:
        pass  # without blake3 the forgery is even weaker; the MAC fails either way
    records[0].write_bytes(forged)
    # The forged record is a miss: the function runs again, nothing is unpickled.
    assert "computing" in call()
    assert not marker.exists(), "the gadget ran"
    s = stats(Path(sys.executable).parent / "casher", cache_dir, project)
    assert s["rejected"] >= 1


def as_nobody_dir(parent: Path, name: str, mode: int = 0o755) -> Path:
    d = parent / name
    d.mkdir()
    shutil.chown(d, "nobody", "nogroup")
    d.chmod(mode)
    return d


@pytest.fixture
def shared_tmp():
    """A directory the `nobody` user can reach (pytest's own is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="casher-sec-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def nobody_casher(casher_bin, shared_tmp) -> Path:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed for the second-uid tests")
    exe = shared_tmp / "casher"
    shutil.copy2(casher_bin, exe)
    exe.chmod(0o755)
    return exe


def nobody(exe: Path, *args: str, cwd: Path, env: dict | None = None):
    full_env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    full_env.update(env or {})
    return subprocess.run([*NOBODY, str(exe), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def test_a_store_someone_else_could_steer_is_not_used(nobody_casher, shared_tmp) -> None:
    home = as_nobody_dir(shared_tmp, "home")
    # Owned by root, used by nobody: refused, one warning, the command runs.
    foreign = shared_tmp / "foreign"
    foreign.mkdir()
    foreign.chmod(0o755)
    out = nobody(nobody_casher, "run", "--cache-dir", str(foreign), "--", "echo", "hi", cwd=home)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hi\n"
    warnings = [line for line in out.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, out.stderr
    assert str(foreign) in out.stderr and "owned by uid 0" in out.stderr, out.stderr
    assert list(foreign.iterdir()) == []
    # Owned by the user but writable by others: refused with the fix.
    open_store = as_nobody_dir(shared_tmp, "open", 0o777)
    out = nobody(nobody_casher, "run", "--cache-dir", str(open_store), "--", "echo", "hi", cwd=home)
    assert out.returncode == 0 and out.stdout == "hi\n"
    assert "writable by group or others" in out.stderr and f"chmod go-w {open_store}" in out.stderr, out.stderr
    assert list(open_store.iterdir()) == []
    # CASHER_DIR is checked the same way.
    out = nobody(nobody_casher, "run", "--", "echo", "hi", cwd=home, env={"CASHER_DIR": str(foreign)})
    assert out.stdout == "hi\n" and "owned by uid 0" in out.stderr
    # A store of one's own works (and is private).
    mine = home / "cache"
    out = nobody(nobody_casher, "run", "--cache-dir", str(mine), "--", "echo", "hi", cwd=home)
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
    assert (mine / "secret.key").stat().st_mode & 0o777 == 0o600
    # Exists, is ours, but not writable: said as such (not "cannot create").
    locked = as_nobody_dir(shared_tmp, "locked", 0o500)
    out = nobody(nobody_casher, "run", "--cache-dir", str(locked), "--", "echo", "hi", cwd=home)
    assert out.stdout == "hi\n"
    assert "is not writable" in out.stderr and "cannot create" not in out.stderr, out.stderr


def test_pyproject_discovery_stops_at_the_project_root_and_at_foreign_files(nobody_casher, shared_tmp) -> None:
    # A pyproject.toml planted above the user's directory by someone else.
    (shared_tmp / "pyproject.toml").write_text('[tool.casher]\ncache-dir = "evil"\n')
    home = as_nobody_dir(shared_tmp, "home")
    xdg = home / "xdg"
    out = nobody(nobody_casher, "cache", "stats", "--json", cwd=home, env={"XDG_CACHE_HOME": str(xdg)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cache_dir"] == str(xdg / "casher")
    assert "ignoring" in out.stderr and "pyproject.toml" in out.stderr
    assert not (shared_tmp / "evil").exists()


def test_pyproject_above_a_git_root_is_not_used(casher_bin, tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.casher]\ncache-dir = "above"\n')
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "CASHER_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    out = subprocess.run(
        [str(casher_bin), "cache", "stats", "--json"], cwd=project, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cache_dir"] == str(tmp_path / "xdg" / "casher")


def test_python_side_runs_the_function_when_the_store_is_foreign(shared_tmp) -> None:
    """@cached with a store nobody may use: the function still runs and
    returns, with a warning naming the store."""
    venv_python = Path(sys.executable)
    if not os.access(venv_python, os.X_OK):
        pytest.skip("no interpreter")
    foreign = shared_tmp / "foreign"
    foreign.mkdir()
    code = textwrap.dedent(
        f"""
        import logging
        logging.basicConfig()
        from casher import cached

        @cached(cache_dir={str(foreign)!r})
        def f(x):
            return x * 2

        print(f(21))
        """
    )
    home = as_nobody_dir(shared_tmp, "home")
    script = home / "job.py"
    script.write_text(code)
    site = [p for p in sys.path if p.endswith("site-packages")]
    # Let nobody import the installed package from a readable copy.
    pkgs = shared_tmp / "site"
    pkgs.mkdir()
    import casher

    shutil.copytree(Path(casher.__file__).parent, pkgs / "casher")
    for p in pkgs.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    pkgs.chmod(0o755)
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not base.exists():
        pytest.skip("the base interpreter is not reachable")
    out = subprocess.run(
        [*NOBODY, str(base), str(script)],
        cwd=home,
        env={"PYTHONPATH": ":".join([str(pkgs), *site]), "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "No module named" in out.stderr and "casher" not in out.stderr.split("No module named")[1][:20]:
        pytest.skip(f"a dependency is not readable by nobody: {out.stderr[-200:]}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"
    assert str(foreign) in out.stderr and "owned by uid 0" in out.stderr, out.stderr
    assert list(foreign.iterdir()) == []


# --- limits --------------------------------------------------------------------

FLOOD = 600 * 1024 * 1024  # 600 MB: large enough to show a leak, quick in CI


def max_rss_kib(cmd: list[str], cwd: Path, stdout) -> tuple[int, int]:
    """Runs `cmd` under GNU time; returns (exit code, peak RSS in KiB)."""
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, timeout=600
    )
    return proc.returncode, int(proc.stderr.decode().strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="GNU time is needed to measure RSS")
def test_a_stdout_flood_streams_in_bounded_memory_on_miss_and_hit(casher_bin, cache_dir, work, tmp_path) -> None:
    cmd = [str(casher_bin), "run", "--", "head", "-c", str(FLOOD), "/dev/zero"]
    sink = tmp_path / "out.bin"
    for attempt in ("miss", "hit"):
        with open(sink, "wb") as f:
            code, rss = max_rss_kib(cmd, work, f)
        assert code == 0
        assert sink.stat().st_size == FLOOD, attempt
        assert rss < 256 * 1024, f"{attempt}: peak RSS {rss} KiB"
        sink.unlink()
    s = stats(casher_bin, cache_dir, work)
    assert s["hits"] >= 1


# --- maintenance defects ---------------------------------------------------------


def test_gc_after_objects_vanish_leaves_a_clean_store_and_forgets_the_key(casher_bin, cache_dir, work) -> None:
    out = run(casher_bin, "run", "--", "sh", "-c", "head -c 100000 /dev/urandom > f", cwd=work)
    assert out.returncode == 0, out.stderr
    key = json.loads(run(casher_bin, "cache", "ls", "--json", cwd=work).stdout)[0]["key"]
    for obj in objects(cache_dir):
        obj.unlink()  # dropped as corrupt
    assert run(casher_bin, "cache", "verify", cwd=work).returncode == 1
    assert run(casher_bin, "cache", "gc", cwd=work).returncode == 0
    verify = run(casher_bin, "cache", "verify", cwd=work)
    assert verify.returncode == 0, verify.stdout
    assert run(casher_bin, "cache", "show", key[:12], cwd=work).returncode != 0


def human_size(n: int) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value, unit = float(n), 0
    while value >= 1024 and unit + 1 < len(units):
        value /= 1024
        unit += 1
    return f"{n} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def test_gc_max_size_reports_what_it_freed(casher_bin, cache_dir, work) -> None:
    for n in range(4):
        out = run(casher_bin, "run", "--", "sh", "-c", f"head -c 200000 /dev/urandom > f{n}", cwd=work)
        assert out.returncode == 0
    before = stats(casher_bin, cache_dir, work)["bytes"]
    gc = run(casher_bin, "cache", "gc", "--max-size", "100K", cwd=work)
    assert gc.returncode == 0, gc.stderr
    after = stats(casher_bin, cache_dir, work)["bytes"]
    assert after <= 100 * 1024
    assert gc.stdout.decode().strip().endswith(f"freed {human_size(before - after)}"), (gc.stdout, before, after)
    listed = json.loads(run(casher_bin, "cache", "ls", "--json", cwd=work).stdout)
    assert len(listed) == 0


def test_cache_show_prints_symlink_targets(casher_bin, cache_dir, work) -> None:
    assert run(casher_bin, "run", "--", "ln", "-s", "the-target", "lnk", cwd=work).returncode == 0
    key = json.loads(run(casher_bin, "cache", "ls", "--json", cwd=work).stdout)[0]["key"]
    show = run(casher_bin, "cache", "show", key[:12], cwd=work)
    assert show.returncode == 0
    line = next(line for line in show.stdout.decode().splitlines() if line.strip().startswith("symlink "))
    assert line.rstrip().endswith("-> the-target"), line

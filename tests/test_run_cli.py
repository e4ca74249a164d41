"""End-to-end: `casher run` with real programs, the real binary and real ptrace."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run(casher, *cmd: str, cwd: Path, env: dict | None = None, stdin: bytes | None = None, flags=("-v",)):
    """`casher run -v -- CMD`, returning (code, stdout, stderr, hit?)."""
    args = ["run", *flags, "--", *cmd]
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [str(casher.bin), *args], cwd=cwd, env=full_env, input=stdin, capture_output=True, timeout=120
    )
    err = proc.stderr.decode()
    hit = "casher: hit" in err
    return proc.returncode, proc.stdout.decode(), err, hit


@pytest.fixture
def casher(casher_bin: Path, cache_dir: Path):
    class C:
        bin = casher_bin

    return C


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d.resolve()


def test_shell_pipeline_hit_restores_files_and_replays_output(casher, work: Path) -> None:
    (work / "in.txt").write_text("hello\nworld\n")
    original_mtime = (work / "in.txt").stat().st_mtime_ns
    script = "sort -r in.txt | tr a-z A-Z > out.txt && mkdir -p d && cp out.txt d/copy && echo stdout-1 && echo stderr-1 >&2 && echo stdout-2"
    code, out, err, hit = run(casher, "sh", "-c", script, cwd=work)
    assert (code, hit) == (0, False)
    assert out == "stdout-1\nstdout-2\n"
    assert "stderr-1" in err
    (work / "out.txt").unlink()
    shutil.rmtree(work / "d")
    code, out, err, hit = run(casher, "sh", "-c", script, cwd=work)
    assert (code, hit) == (0, True), err
    assert out == "stdout-1\nstdout-2\n"
    assert "stderr-1" in err
    assert (work / "out.txt").read_text() == "WORLD\nHELLO\n"
    assert (work / "d" / "copy").read_text() == "WORLD\nHELLO\n"
    # An input edit is a miss that says why; reverting is a hit again.
    (work / "in.txt").write_text("other\n")
    code, out, err, hit = run(casher, "sh", "-c", script, cwd=work)
    assert not hit and "in.txt changed" in err
    # `sort` stats its input, `cp` its destination: reverting means reverting
    # what those showed too (the input's mtime, the outputs' absence).
    (work / "out.txt").unlink()
    shutil.rmtree(work / "d")
    (work / "in.txt").write_text("hello\nworld\n")
    os.utime(work / "in.txt", ns=(original_mtime, original_mtime))
    assert run(casher, "sh", "-c", script, cwd=work)[3]


def test_interleaving_is_kept_when_stdout_and_stderr_share_a_file(casher_bin: Path, cache_dir: Path, work: Path) -> None:
    script = "echo a; echo b >&2; echo c; echo d >&2"
    outputs = []
    for _ in range(2):
        with open(work / "both.log", "wb") as log:
            subprocess.run([str(casher_bin), "run", "--", "sh", "-c", script], cwd=work, stdout=log, stderr=log, check=True)
        outputs.append((work / "both.log").read_text())
    assert outputs == ["a\nb\nc\nd\n", "a\nb\nc\nd\n"]


def test_gcc_header_appearing_in_an_earlier_include_dir(casher, work: Path) -> None:
    if not shutil.which("gcc"):
        pytest.fail("gcc is required for this test (Debian: apt-get install gcc)")
    (work / "inc1").mkdir()
    (work / "inc2").mkdir()
    (work / "inc2" / "config.h").write_text("#define VALUE 2\n")
    (work / "main.c").write_text('#include "config.h"\nint value(void) { return VALUE; }\n')
    cmd = ("gcc", "-O2", "-c", "main.c", "-Iinc1", "-Iinc2", "-o", "main.o")
    assert run(casher, *cmd, cwd=work)[0] == 0
    first = (work / "main.o").read_bytes()
    # gcc looks at main.o before writing it: absent the first time, present
    # now, so one more miss records that state.
    code, _, err, hit = run(casher, *cmd, cwd=work)
    assert not hit and "main.o now exists" in err
    assert run(casher, *cmd, cwd=work)[3]
    (work / "inc1" / "config.h").write_text("#define VALUE 1\n")
    code, _, err, hit = run(casher, *cmd, cwd=work)
    assert code == 0 and not hit, err
    assert "inc1/config.h now exists" in err
    assert (work / "main.o").read_bytes() != first, "the new header must be used"


def test_python_module_appearing_earlier_on_sys_path(casher, work: Path) -> None:
    (work / "a").mkdir()
    (work / "b").mkdir()
    (work / "b" / "m.py").write_text("print('from b')\n")
    env = {"PYTHONPATH": f"{work / 'a'}:{work / 'b'}", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = (sys.executable, "-c", "import m")
    assert run(casher, *cmd, cwd=work, env=env)[1] == "from b\n"
    assert run(casher, *cmd, cwd=work, env=env)[3]
    (work / "a" / "m.py").write_text("print('from a')\n")
    code, out, err, hit = run(casher, *cmd, cwd=work, env=env)
    assert not hit and out == "from a\n", err


def test_directory_listing_change_is_a_miss(casher, work: Path) -> None:
    (work / "data").mkdir()
    (work / "data" / "1.csv").write_text("x")
    assert run(casher, "ls", "data", cwd=work)[1] == "1.csv\n"
    assert run(casher, "ls", "data", cwd=work)[3]
    (work / "data" / "2.csv").write_text("y")
    code, out, err, hit = run(casher, "ls", "data", cwd=work)
    assert not hit and out == "1.csv\n2.csv\n"
    assert "has different entries" in err


def test_rename_over_temp_and_deletions(casher, work: Path) -> None:
    (work / "stale.txt").write_text("old")
    script = "echo v1 > .tmp.out && mv .tmp.out result.txt && rm stale.txt && echo x > scratch && rm scratch"
    assert run(casher, "sh", "-c", script, cwd=work)[0] == 0
    (work / "stale.txt").write_text("old")
    (work / "result.txt").unlink()
    code, _, err, hit = run(casher, "sh", "-c", script, cwd=work)
    assert hit, err
    assert (work / "result.txt").read_text() == "v1\n"
    assert not (work / "stale.txt").exists(), "the deletion is replayed"
    assert not (work / ".tmp.out").exists() and not (work / "scratch").exists()


def test_multithreaded_writer(casher, work: Path) -> None:
    code = (
        "import threading\n"
        "def w(i):\n    open(f'part{i}.txt', 'w').write(str(i) * 1000)\n"
        "ts = [threading.Thread(target=w, args=(i,)) for i in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
    )
    assert run(casher, sys.executable, "-c", code, cwd=work)[0] == 0
    for i in range(8):
        (work / f"part{i}.txt").unlink()
    assert run(casher, sys.executable, "-c", code, cwd=work)[3]
    for i in range(8):
        assert (work / f"part{i}.txt").read_text() == str(i) * 1000


def test_shebang_interpreter_change_is_a_miss(casher, work: Path) -> None:
    interp = work / "myinterp"
    shutil.copyfile("/bin/sh", interp)
    interp.chmod(0o755)
    script = work / "script"
    script.write_text(f"#!{interp}\necho from-script\n")
    script.chmod(0o755)
    assert run(casher, "./script", cwd=work)[1] == "from-script\n"
    assert run(casher, "./script", cwd=work)[3]
    with open(interp, "ab") as f:
        f.write(b"\0changed")
    code, out, err, hit = run(casher, "./script", cwd=work)
    assert not hit and "myinterp changed" in err, err


def test_stdin_content_is_an_input(casher, work: Path) -> None:
    assert run(casher, "tr", "a-z", "A-Z", cwd=work, stdin=b"abc\n")[1] == "ABC\n"
    assert run(casher, "tr", "a-z", "A-Z", cwd=work, stdin=b"abc\n")[3]
    code, out, _, hit = run(casher, "tr", "a-z", "A-Z", cwd=work, stdin=b"xyz\n")
    assert not hit and out == "XYZ\n"


def test_exit_codes_and_signals(casher, work: Path) -> None:
    code, _, err, _ = run(casher, "sh", "-c", "exit 3", cwd=work)
    assert code == 3
    assert run(casher, "sh", "-c", "exit 3", cwd=work)[3] is False, "failures are not cached by default"
    assert run(casher, "sh", "-c", "exit 4", cwd=work, flags=("-v", "--cache-failures"))[0] == 4
    code, _, err, hit = run(casher, "sh", "-c", "exit 4", cwd=work, flags=("-v", "--cache-failures"))
    assert (code, hit) == (4, True)
    code, _, _, _ = run(casher, "sh", "-c", "kill -TERM $$", cwd=work)
    assert code == 143


def test_selected_env_vars_are_keyed_others_are_not(casher, work: Path) -> None:
    cmd = ("sh", "-c", "echo $MODE")
    flags = ("-v", "--env", "MODE")
    assert run(casher, *cmd, cwd=work, env={"MODE": "a", "OTHER": "1"}, flags=flags)[1] == "a\n"
    assert run(casher, *cmd, cwd=work, env={"MODE": "a", "OTHER": "2"}, flags=flags)[3]
    code, out, _, hit = run(casher, *cmd, cwd=work, env={"MODE": "b"}, flags=flags)
    assert not hit and out == "b\n"


def test_explain_and_force(casher, work: Path) -> None:
    (work / "f").write_text("1")
    code, out, _, _ = run(casher, "cat", "f", cwd=work, flags=("--explain",))
    # --explain exits 1 for a miss, 0 for a hit.
    assert code == 1 and out.startswith("miss ") and "never run before" in out
    run(casher, "cat", "f", cwd=work)
    code, out, _, _ = run(casher, "cat", "f", cwd=work, flags=("--explain",))
    assert code == 0 and out.startswith("hit ")
    (work / "f").write_text("2")
    assert "f changed" in run(casher, "cat", "f", cwd=work, flags=("--explain",))[1]
    code, out, err, hit = run(casher, "cat", "f", cwd=work, flags=("-v", "--force"))
    assert not hit and out == "2"


def test_restore_never_writes_outside_the_allowed_roots(casher, work: Path, tmp_path: Path) -> None:
    outside = Path("/var/tmp") / f"casher-test-{os.getpid()}-{tmp_path.name}"
    outside.mkdir(parents=True, exist_ok=True)
    try:
        cmd = ("sh", "-c", f"echo secret > {outside}/planted; echo ran")
        assert run(casher, *cmd, cwd=work)[0] == 0
        (outside / "planted").unlink()
        code, out, err, hit = run(casher, *cmd, cwd=work)
        assert not hit and "refusing to restore" in err, err
        assert out == "ran\n", "the command still ran"
        (outside / "planted").unlink()
        code, out, err, hit = run(casher, *cmd, cwd=work, env={"CASHER_ALLOWED_ROOTS": str(outside)})
        assert hit, err
        assert (outside / "planted").read_text() == "secret\n"
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_no_cache_runs_plainly(casher, work: Path) -> None:
    code, out, _, _ = run(casher, "sh", "-c", "echo plain; exit 5", cwd=work, flags=("--no-cache",))
    assert (code, out) == (5, "plain\n")


def strace_opens(cmd: list[str], cwd: Path) -> set[str]:
    log = cwd.parent / "strace.log"
    subprocess.run(
        ["strace", "-f", "-qq", "-y", "-e", "trace=open,openat,openat2,creat,execve", "-o", str(log), *cmd],
        cwd=cwd,
        check=True,
        capture_output=True,
    )
    seen = set()
    for line in log.read_text().splitlines():
        # With -y, a dirfd argument prints as `4</abs/dir>`.
        m = re.search(r'(?:open|openat|openat2|creat|execve)\((?:AT_FDCWD, |\d+<([^>]*)>, )?"([^"]+)".*\)\s+= (\d+)', line)
        if not m or "O_DIRECTORY" in line:
            continue
        base, path = m.group(1), m.group(2)
        if not path.startswith("/"):
            path = str(Path(base or cwd) / path)
        seen.add(os.path.normpath(path))
    return seen


@pytest.mark.parametrize(
    "cmd",
    [
        [sys.executable, "-c", "import json, email, http.client"],
        ["gcc", "-O2", "-c", "hello.c", "-o", "hello.o"],
        ["tar", "cf", "out.tar", "src"],
    ],
    ids=["python-import", "gcc", "tar"],
)
def test_every_file_strace_saw_opened_is_recorded(casher, casher_bin: Path, work: Path, cmd: list[str]) -> None:
    if not shutil.which("strace"):
        pytest.fail("strace is required (make test installs it from Debian's packages)")
    (work / "hello.c").write_text("#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n")
    (work / "src").mkdir()
    for i in range(5):
        (work / "src" / f"f{i}.txt").write_text(str(i))
    truth = strace_opens(cmd, work)
    for f in ("hello.o", "out.tar"):
        (work / f).unlink(missing_ok=True)
    assert run(casher, *cmd, cwd=work)[0] == 0
    explain = run(casher, *cmd, cwd=work, flags=("--explain",))[1]
    key = explain.split()[1].rstrip(":")  # a miss now (the outputs exist) still names the key
    show = subprocess.run(
        [str(casher_bin), "cache", "show", key, "--json"], capture_output=True, text=True, check=True
    )
    variant = json.loads(show.stdout)["variants"][0]
    recorded = {i["path"] for i in variant["inputs"]} | {o["path"] for o in variant["outputs"]}
    ignored = ("/proc", "/dev", "/sys", "/run", str(Path(os.environ["CASHER_DIR"])))
    missing = sorted(p for p in truth if not p.startswith(ignored) and p not in recorded and not os.path.isdir(p))
    assert not missing, f"opened per strace but not recorded: {missing[:20]}"

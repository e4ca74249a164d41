"""What a plain call's caller receives besides its value: warnings through
its `warnings` machinery (filters, once-per-location registries,
`catch_warnings(record=True)`, `logging.captureWarnings`, the line
`stacklevel=2` blames), log records whole (arguments, `extra=`, exception),
output byte for byte, and nothing from casher itself. Each test runs the
same script with casher and without it (tests/cached_oracle.py)."""

from __future__ import annotations

from pathlib import Path

from cached_oracle import Twin

WARNS = """
    import warnings

    from casher import cached

    class StaleData(UserWarning):
        pass

    @cached
    def f(x):
        warnings.warn("old API", FutureWarning)
        warnings.warn("stale input", StaleData, stacklevel=1)
        warnings.warn("going away", DeprecationWarning)
        return x + 1
"""


def test_warnings_reach_the_callers_machinery(tmp_path: Path, cache_dir: Path) -> None:
    """Recorded by the caller's `catch_warnings`, shown once per location
    under the "default" action, logged under `captureWarnings`: the same on
    a miss and on a hit."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": WARNS,
            "main.py": """
                import logging
                import os
                import sys
                import warnings

                import mod

                def seen(ws):
                    return [(w.category.__name__, str(w.message), os.path.basename(w.filename), w.lineno) for w in ws]

                with warnings.catch_warnings(record=True) as ws:
                    warnings.simplefilter("always")
                    print(mod.f(1), seen(ws))
                with warnings.catch_warnings(record=True) as ws:
                    print(mod.f(2), mod.f(2), mod.f(3), seen(ws))
                logging.basicConfig(stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
                for handler in logging.getLogger().handlers:  # the copies' paths differ
                    handler.addFilter(lambda r: setattr(r, "msg", r.getMessage().replace(os.getcwd(), ".")) or True)
                logging.captureWarnings(True)
                with warnings.catch_warnings():
                    warnings.simplefilter("always")
                    print(mod.f(4))
            """,
        },
    )
    first = twin.check("main.py", hits=1)  # f(2) twice
    assert "StaleData" in first.out and "py.warnings WARNING ./mod.py" in first.out, first.out
    twin.check("main.py", hits=5)


def test_a_deprecation_from_the_callers_script_is_shown_as_there(tmp_path: Path, cache_dir: Path) -> None:
    """Python shows a DeprecationWarning only when it is attributed to
    `__main__`: a function defined in the script (sent by value) warns from
    there."""
    twin = Twin(
        tmp_path,
        {
            "main.py": """
                import warnings

                from casher import cached
                import mod

                @cached
                def g(x):
                    warnings.warn("main-only", DeprecationWarning)
                    return x

                with warnings.catch_warnings(record=True) as ws:
                    print(g(1), mod.f(1), sorted(str(w.message) for w in ws))
            """,
            "mod.py": WARNS,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=2)


def test_a_warning_turned_into_an_error_by_a_module_filter(tmp_path: Path, cache_dir: Path) -> None:
    """Filters match the module a warning is attributed to."""
    twin = Twin(
        tmp_path,
        {
            "mod.py": WARNS,
            "main.py": """
                import sys
                import warnings

                import mod

                warnings.filterwarnings("error", category=FutureWarning, module=sys.argv[1])
                try:
                    print(mod.f(1))
                except FutureWarning as exc:
                    print("raised", exc)
            """,
        },
    )
    twin.check("main.py", "mod", hits=0)
    twin.check("main.py", "other", hits=0)
    twin.check("main.py", "mod", hits=0)
    twin.check("main.py", "other", hits=1)


CODED = """
    import warnings

    from casher import cached

    class CodedWarning(UserWarning):
        def __init__(self, code, text):
            super().__init__(text)
            self.code = code

    @cached
    def check(x):
        warnings.warn(CodedWarning(42, f"value {x} is odd"))
        return x

    @cached
    def old_api(x):
        warnings.warn("old_api is deprecated", DeprecationWarning, stacklevel=2)
        return x * 2
"""


def test_warnings_keep_their_class_attributes_and_the_blamed_caller(tmp_path: Path, cache_dir: Path) -> None:
    """A warning class whose `__init__` takes other arguments arrives whole
    (shown, recorded, or raised under an "error" filter); `stacklevel=2`
    blames the caller's line, where Python shows a DeprecationWarning only
    from `__main__`."""
    twin = Twin(
        tmp_path,
        {
            "lib.py": CODED,
            "main.py": """
                import os
                import sys
                import warnings

                import lib

                with warnings.catch_warnings(record=True) as ws:
                    print(lib.check(1), lib.old_api(1))
                for w in ws:
                    print(w.category.__name__, w.message, getattr(w.message, "code", None), os.path.basename(w.filename), w.lineno)
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    try:
                        lib.check(3)
                    except lib.CodedWarning as exc:
                        print("raised", exc, exc.code)
            """,
        },
    )
    first = twin.check("main.py", hits=0)
    assert "DeprecationWarning old_api is deprecated None main.py 9" in first.out, first.out
    twin.check("main.py", hits=2)  # a call that raised is not stored


def test_log_records_keep_their_arguments_extras_and_exception(tmp_path: Path, cache_dir: Path) -> None:
    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                import logging
                from casher import cached

                log = logging.getLogger("proj.lib")

                @cached
                def work(x):
                    log.info("info %s %s", x, (1, 2), extra={"user": "bob", "ids": {1: 2}})
                    try:
                        1 / 0
                    except ZeroDivisionError:
                        log.exception("failed for %s", x)
                    return x
            """,
            "main.py": """
                import logging
                import sys

                from lib import work

                class Keep(logging.Handler):
                    def emit(self, record):
                        print(record.levelname, record.msg, record.args, record.getMessage(), getattr(record, "user", "-"), getattr(record, "ids", "-"), record.exc_info and record.exc_info[0].__name__)

                logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(user)s %(message)s")
                logging.getLogger("proj").addHandler(Keep())
                print(work(1))
            """,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=1)


def test_no_resource_warning_at_exit(tmp_path: Path, cache_dir: Path) -> None:
    """A caller that shows ResourceWarnings sees none from casher."""
    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                from casher import cached

                @cached
                def f(x):
                    return x + 1
            """,
            "main.py": """
                import warnings

                warnings.simplefilter("default")
                import lib

                print(lib.f(1))
            """,
        },
    )
    for _ in range(2):
        run = twin.check("main.py")
        assert "ResourceWarning" not in run.err, run.err


def test_output_that_looks_like_a_frame_is_output(tmp_path: Path, cache_dir: Path) -> None:
    """Log records and warnings travel framed in the call's output; a file
    the call copies to its output may hold what looks like a frame (an
    attacker's log record): it is printed, as a plain call prints it."""
    import struct

    body = b'{"name": "root", "levelno": 40, "levelname": "ERROR", "msg": "injected", "args": null}'
    frame = b"\x00\x1b[casher-log]" + struct.pack("<Q", len(body)) + body
    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                import sys
                from casher import cached

                @cached
                def cat(path):
                    with open(path, "rb") as f:
                        data = f.read()
                    for stream in (sys.stdout, sys.stderr):
                        stream.flush()
                        stream.buffer.write(data)
                        stream.flush()
                    return len(data)
            """,
            "main.py": """
                import logging
                import sys

                import lib

                logging.basicConfig(stream=sys.stdout, format="LOG %(message)s")
                print(lib.cat("frame.bin"))
            """,
        },
    )
    for base in (twin.plain, twin.cached):
        (base / "frame.bin").write_bytes(frame)
    for hits in (0, 1):
        run = twin.check("main.py", hits=hits)
        assert "injected" in run.out and "LOG injected" not in run.out, run.out
        assert "injected" in run.err, run.err


def test_output_bytes_arrive_as_written(tmp_path: Path, cache_dir: Path) -> None:
    """Invalid UTF-8 and text in the caller's own encoding (latin-1) are
    the bytes the call wrote, on a miss and on a hit."""
    import os
    import subprocess
    import sys

    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                import sys
                from casher import cached

                @cached
                def f(x):
                    print("café", x)
                    sys.stdout.flush()
                    sys.stdout.buffer.write(b"\\xe2\\x82 \\xff\\n")
                    sys.stdout.flush()
                    print("naïve", file=sys.stderr)
                    return x
            """,
            "main.py": """
                import lib

                print(lib.f(1))
            """,
        },
    )

    def run(which: str) -> tuple[int, bytes, bytes]:
        base = twin.plain if which == "plain" else twin.cached
        env = dict(os.environ, PYTHONPATH=str(base) if which == "plain" else "", PYTHONIOENCODING="latin-1")
        proc = subprocess.run([sys.executable, "main.py"], cwd=base, env=env, capture_output=True, timeout=180)
        err = b"".join(line for line in proc.stderr.splitlines(keepends=True) if not line.startswith(b"casher:"))
        return proc.returncode, proc.stdout, err

    plain = run("plain")
    assert plain[1].startswith("café 1\n".encode("latin-1")), plain
    for _ in range(2):  # a miss, then a hit
        assert run("cached") == plain


def test_output_reaches_the_stream_the_caller_put_in_place(tmp_path: Path, cache_dir: Path) -> None:
    """`redirect_stdout` to an `io.StringIO`, or to a stream with another
    encoding: the call's output arrives there, as text."""
    twin = Twin(
        tmp_path,
        {
            "lib.py": """
                from casher import cached

                @cached
                def f(x):
                    print("café", x)
                    return x
            """,
            "main.py": """
                import contextlib
                import io

                import lib

                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    v = lib.f(1)
                print(repr(buf.getvalue()), v)
                raw = io.BytesIO()
                wrapper = io.TextIOWrapper(raw, encoding="latin-1")
                with contextlib.redirect_stdout(wrapper):
                    lib.f(2)
                wrapper.flush()
                print(raw.getvalue())
            """,
        },
    )
    twin.check("main.py", hits=0)
    twin.check("main.py", hits=2)

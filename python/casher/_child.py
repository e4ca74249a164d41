"""The traced child of a `@cached` call: loads the function's module, runs
the function once on the arguments it is given, and writes back the return
value (or the exception). What it read, imported modules included, the
tracer records.

Run as `python -m casher._child CALL_FILE RESULT_FILE`. Never imported by
user code.
"""

from __future__ import annotations

import importlib
import importlib.util
import mmap
import os
import pickle
import struct
import sys
import traceback

BEGIN_MARKER = "/dev/null/.casher-begin"


def read_call(source: str | int):
    """Header length, pickle, then the out-of-band buffers, memory-mapped
    from a file or (from the fork server) a shared-memory descriptor."""
    if isinstance(source, int):
        mapped = mmap.mmap(source, 0, access=mmap.ACCESS_READ)
    else:
        with open(source, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapped)
    (n_buffers,) = struct.unpack_from("<Q", view, 0)
    at = 8
    sizes = struct.unpack_from(f"<{n_buffers + 1}Q", view, at)
    at += 8 * (n_buffers + 1)
    pickled = view[at : at + sizes[0]]
    at += sizes[0]
    buffers = []
    for size in sizes[1:]:
        buffers.append(view[at : at + size])
        at += size
    return pickled, buffers


def load_module(payload: dict):
    if payload["module"] == "__main__":
        # A script: loaded under another name so its `if __name__ ==
        # "__main__"` block does not run, and registered as __main__ too so
        # pickles of its classes resolve.
        spec = importlib.util.spec_from_file_location("__casher_main__", payload["file"])
        module = importlib.util.module_from_spec(spec)
        sys.modules["__casher_main__"] = module
        sys.modules["__main__"] = module
        spec.loader.exec_module(module)
        # Objects defined by the script say they come from __main__, as in
        # the caller, so values pickled here unpickle there.
        for value in list(vars(module).values()):
            if getattr(value, "__module__", None) == "__casher_main__":
                try:
                    value.__module__ = "__main__"
                except (AttributeError, TypeError):
                    pass
        return module
    return importlib.import_module(payload["module"])


def resolve(module, qualname: str):
    target = module
    for part in qualname.split("."):
        target = getattr(target, part)
    return getattr(target, "__casher_original__", target)


def prepare(payload: dict) -> None:
    """The caller's import path; from here on, every file read is a
    dependency of the result."""
    sys.path[:] = payload["sys_path"]
    os.environ["CASHER_CHILD"] = "1"
    try:
        os.stat(BEGIN_MARKER)
    except OSError:
        pass


def call(payload: dict, call_source: str | int) -> dict:
    """Runs the call; its answer (the pickled value, what it executed)."""
    module = load_module(payload)
    func = resolve(module, payload["qualname"])
    pickled, buffers = read_call(call_source)
    args, kwargs = pickle.loads(pickled, buffers=buffers)
    executed: set = set()
    if os.environ.get("CASHER_CHECK_REACH") == "1":
        def profile(frame, event, arg):
            if event == "call":
                code = frame.f_code
                executed.add((code.co_filename, code.co_firstlineno, code.co_qualname))

        sys.setprofile(profile)
    try:
        value = func(*args, **kwargs)
    finally:
        sys.setprofile(None)
    return {"ok": True, "value": pickle.dumps(value, protocol=5), "executed": sorted(executed)}


def answer(payload: dict, call_source: str | int) -> dict:
    """`call`'s answer, or the exception it raised, for the caller."""
    try:
        return call(payload, call_source)
    except BaseException as exc:  # reported to the caller, re-raised there
        try:
            blob = pickle.dumps(exc, protocol=5)
        except Exception:
            blob = None
        return {
            "ok": False,
            "exception": blob,
            "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": str(exc),
            "traceback": traceback.format_exc(),
        }


def main() -> int:
    call_path, result_path = sys.argv[1], sys.argv[2]
    with open(call_path + ".meta", "rb") as f:
        payload = pickle.load(f)
    prepare(payload)
    result = answer(payload, call_path)
    sys.stdout.flush()
    sys.stderr.flush()
    tmp = result_path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(result, f, protocol=5)
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

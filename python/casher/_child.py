"""The traced child of a `@cached` call: loads the function's module (or
receives the function by value), brings the caller's state over, runs the
function once on the arguments it is given, and writes back the return
value (or the exception) with what the tracer cannot see: the project code
the call executed, the environment variables it read and the log records it
emitted. What it read, imported modules included, the tracer records.

Run as `python -m casher._child CALL META RESULT` (paths, see
`casher._transport`). Never imported by user code.
"""

from __future__ import annotations

import copy
import importlib
import importlib.machinery
import importlib.util
import mmap
import os
import pickle
import struct
import sys
import traceback
import types
from typing import Any

BEGIN_MARKER = "/dev/null/.casher-begin"
# `casher_tracer::IMPORTED_MARKER`: probed once a fresh interpreter's
# import is done.
IMPORTED_MARKER = "/dev/null/.casher-imported"

_FRESH = False
"""This interpreter runs one call (`main`), not a fork server's child."""


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


_MAIN_IS_CALLERS: list[bool] = []
"""Set when this process loaded the caller's `__main__` (the function is
defined there): otherwise `__main__` is casher's own, and the caller's
`__main__` values a call reaches travel by value (cloudpickle)."""


def _as_main(module: Any, name: str) -> None:
    """Objects defined by the caller's `__main__` say they come from
    `__main__`, as in the caller, so values pickled here unpickle there."""
    sys.modules["__main__"] = module
    _MAIN_IS_CALLERS[:] = [True]

    def rename(value: Any) -> None:
        if getattr(value, "__module__", None) == name:
            try:
                value.__module__ = "__main__"
            except (AttributeError, TypeError):
                pass

    for value in list(vars(module).values()):
        rename(value)
        if issubclass(type(value), type):  # and its methods, as the caller's
            for attr in list(vars(value).values()):
                rename(attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr)
    # Its code runs as `__main__` in a plain call: `warn` attributes its
    # warnings by this name (Python shows a DeprecationWarning only from
    # `__main__`), and code may test it.
    vars(module)["__name__"] = "__main__"


def load_module(payload: dict) -> Any:
    if payload["module"] != "__main__":
        return importlib.import_module(payload["module"])
    from casher import _script

    # `python -m pkg.mod`: loaded under its package name, so its relative
    # imports resolve; a script under another name. Without the work it
    # does at the top level (`casher._script`).
    name = payload.get("main_spec") or "__casher_main__"
    main = sys.modules.get("__main__")
    for loader in (_script.Loader, importlib.machinery.SourceFileLoader):
        spec = importlib.util.spec_from_file_location(name, payload["file"], loader=loader(name, payload["file"]))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.modules["__main__"] = module
        try:
            spec.loader.exec_module(module)
            if payload.get("qualname"):  # a server loads for every function of the script
                resolve(module, payload["qualname"])
            break
        except (Exception, SystemExit):  # SystemExit: a kept `parse_args()`
            if loader is not _script.Loader:
                raise
            # A kept statement needed what a left-out one made: whole.
            sys.modules["__main__"] = main
    _as_main(module, name)
    return module


def resolve(module: Any, qualname: str) -> Any:
    target = module
    for part in qualname.split("."):
        target = getattr(target, part)
    from casher import _peek

    return _peek.original(target)


class StateMismatch(Exception):
    """The caller's state differs from a fresh import and cannot be sent."""


class ImportFailed(Exception):
    """The function's module, which the caller imported, fails to import
    here (its import deleted a file it needs, say): not the function's
    error, the call runs in the caller."""


def apply_state(items: list, fresh: dict | None = None) -> list:
    """Brings the caller's module-level values over where they differ;
    returns the values it brought. An item is (module, path, fingerprint,
    pickled value or None[, known]): `known` when the caller learned that
    this server's fresh import has a value of that fingerprint (every call
    forks from the same state, so it is not compared again). `fresh`
    receives the fingerprints of the fresh import's values, computed before
    anything was assigned (so they are the server's, for the caller to
    learn)."""
    from casher import _descriptors, _state

    unsendable, brought = [], []
    pristine = True  # nothing imported or assigned yet: the server's state
    for module_name, path, expected, blob, *known in items:
        if known and known[0]:
            continue
        if module_name == "__main__" and not _MAIN_IS_CALLERS:
            continue
        module = sys.modules.get(module_name)
        if module is None:
            pristine = False  # an import here is not the server's (it may differ per call)
            try:
                module = importlib.import_module(module_name)
            except Exception:
                unsendable.append(".".join((module_name, *path)))
                continue
        here = _state.lookup(module, path)
        if not _state.is_missing(here) and not expected.startswith(_state.UNKNOWN):
            here_print = _state.fingerprint(here)
            if fresh is not None and pristine and not here_print.startswith(_state.UNKNOWN):
                fresh[(module_name, tuple(path))] = here_print
            if here_print == expected:
                continue
        if type(here) is int and here in _descriptors.OPENED_BY_IMPORT:
            # A descriptor the fresh import opened: this process's own
            # handle to what the caller's number is its handle to.
            continue
        if blob is None:
            unsendable.append(".".join((module_name, *path)))
            continue
        try:
            value = pickle.loads(blob)
        except Exception:  # its class cannot be rebuilt here: not the function's error
            unsendable.append(".".join((module_name, *path)))
            continue
        pristine = False
        try:
            _state.assign(module, path, value)
        except Exception:  # nowhere to put it here: not the function's error
            unsendable.append(".".join((module_name, *path)))
            continue
        brought.append(value)
    if unsendable:
        raise StateMismatch(", ".join(unsendable))
    return brought


def _held_code(items: list) -> list:
    """The project classes and functions the reached values hold, as the
    call starts (see `_state.code_in`)."""
    from casher import _state

    values = []
    for module_name, path, *_ in items:
        module = sys.modules.get(module_name)
        if module is not None:
            value = _state.lookup(module, path)
            if not _state.is_missing(value):
                values.append(value)
    return _state.code_in(values)


def _codes_of(func: Any) -> list:
    """Code that did not come from a module file: a function sent by value
    and what it closes over."""
    import types

    codes, todo, seen = [], [func], set()
    while todo:
        f = todo.pop()
        if id(f) in seen or type(f) is not types.FunctionType:
            continue
        seen.add(id(f))
        codes.append(f.__code__)
        for cell in f.__closure__ or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:
                pass
        # By type (`isinstance` would read `__class__` of every global: a
        # lazily loaded module would load).
        todo.extend(v for v in f.__globals__.values() if type(v) is types.FunctionType and v.__module__ == f.__module__)
    return codes


def call(payload: dict, call_source: str | int, result_path: str) -> dict:
    """Runs the call; its answer (the pickled value, what it executed, the
    environment variables it read...). `call_source` is the arguments' file
    or (from the fork server) descriptor."""
    from casher import _callers, _descriptors, _events, _executed, _observe

    # A fresh interpreter imports the module here (a fork server's child
    # has it from the server, with what the server's import left open).
    before = _descriptors.open_now() if _FRESH else None
    if payload.get("function") is not None:
        with _observe.quiet():
            func = pickle.loads(payload["function"])
    else:
        with _observe.quiet():
            try:
                module = load_module(payload)
            except KeyboardInterrupt:
                raise  # Ctrl-C during the import: the caller's, as in a plain call
            except BaseException as exc:
                raise ImportFailed(f"{type(exc).__name__}: {exc}") from None
        func = resolve(module, payload["qualname"])
    unwatched = _descriptors.before_the_call(before)
    fresh: dict = {}
    brought = apply_state(payload.get("state", []), fresh)
    held = _held_code(payload.get("state", []))
    if _FRESH:
        # What the import did is the import's (the caller's did it too),
        # not the call's: the tracer starts the call here.
        try:
            os.stat(IMPORTED_MARKER)
        except OSError:
            pass
    _observe.apply_levels(*payload.get("logging", ({}, 0)))
    try:
        from casher import _settings

        _settings.apply(payload.get("settings"), payload.get("settings_print"))
    except Exception as exc:  # not the function's error: the call runs in the caller
        raise StateMismatch(f"library settings ({type(exc).__name__}: {exc})") from None
    pickled, buffers = read_call(call_source)
    args, kwargs = pickle.loads(pickled, buffers=buffers)
    from casher import _randomness

    rng = _randomness.apply(pickle.loads(payload["rng"]) if payload.get("rng") else {})
    _APPLIED_RNG.update(rng)
    executed: set = set()
    if os.environ.get("CASHER_CHECK_REACH") == "1":

        def profile(frame, event, arg):
            code = frame.f_code
            if event == "call" and not _callers.is_copy(code):
                executed.add((code.co_filename, code.co_firstlineno, code.co_qualname))

        sys.setprofile(profile)
    try:
        with _observe.env_reads() as env, _events.emitted(payload.get("log_stream", 2), payload.get("mark") or _events.MARK):
            # Code that arrived by value (the function, values of the
            # caller's state) is watched too: it has no module file.
            extra = _codes_of(func) + [c for v in brought for c in _codes_of(v.__func__ if type(v) is types.MethodType else v)]
            try:
                defaults = (copy.deepcopy(func.__defaults__), copy.deepcopy(func.__kwdefaults__))
            except Exception:  # defaults that cannot be copied are not sent back
                defaults = None
            # Under the caller's frames, as a plain call (`stacklevel=2`).
            callers = payload.get("callers") or []
            value, ran = _executed.run(lambda: _callers.call_from(callers, func, args, kwargs), extra)
    finally:
        sys.setprofile(None)
        _returned()
    if payload.get("function") is not None:
        # Its classes may exist only by value (defined in `python -c`).
        import cloudpickle

        blob, buffers = cloudpickle.dumps(value, protocol=5), []
    else:
        from casher import _values

        # Large buffers leave the pickle for files the store adopts.
        blob, buffers = _values.dump_to_files(value, payload.get("buffers_stem") or result_path)
    # A call that mutates its own defaults (`acc=[]`) changes the caller's
    # function too: the defaults it leaves are sent back.
    after = None
    try:
        if defaults is not None and (func.__defaults__, func.__kwdefaults__) != defaults:
            after = pickle.dumps((func.__defaults__, func.__kwdefaults__), protocol=5)
    except Exception:
        after = None
    return {
        "ok": True,
        "value": blob,
        "buffers": buffers,
        "defaults": after,
        "executed": sorted(executed),
        "ran": sorted(set(ran) | set(held)),
        "env": sorted(env),
        "fresh": list(fresh.items()),
        # The caller's generators it drew from: their states now.
        "rng": _randomness.drawn(rng),
        "uncacheable": [unwatched] if unwatched else [],
    }


_ANSWER_TO: list = []
"""Where this child's answer goes (`answer_to`)."""


def answer_to(target: int | str) -> None:
    """Marks where the answer goes (the result's memfd, or its path) until
    it is written: the call ended the process if the mark is still there
    (`casher._transport.ENDED`)."""
    from casher import _transport

    _ANSWER_TO[:] = [target]
    _transport.mark(target, _transport.ENDED)


def _returned() -> None:
    """The call returned or raised: an end of the process from now on is
    casher's (pickling the value), not the call's."""
    if _ANSWER_TO:
        from casher import _transport

        try:
            _transport.mark(_ANSWER_TO[0], _transport.RETURNED)
        except OSError:  # the answer, written next, replaces the mark anyway
            pass


def prepare(payload: dict) -> None:
    """The caller's import path and argv; from here on, every file read is a
    dependency of the result (the fork server runs this before importing
    the module once for all its calls)."""
    sys.path[:] = payload["sys_path"]
    sys.argv[:] = payload.get("argv") or sys.argv
    os.environ["CASHER_CHILD"] = "1"
    from casher import _executed, _imports

    _imports.install()
    _executed.capture_loads()
    try:
        os.stat(BEGIN_MARKER)
    except OSError:
        pass


_APPLIED_RNG: dict = {}
"""The caller's generator states this call started from: a call that
raises has drawn too (the caller's generators advance in a plain call)."""


def answer(payload: dict, call_source: str | int, result_path: str) -> dict:
    """`call`'s answer, or the exception it raised, for the caller."""
    try:
        return call(payload, call_source, result_path)
    except StateMismatch as exc:
        return {"ok": False, "state": str(exc)}
    except ImportFailed as exc:
        return {"ok": False, "import": str(exc)}
    except BaseException as exc:  # reported to the caller, re-raised there
        return _raised(exc)


def _raised(exc: BaseException) -> dict:
    """The answer of a call that raised `exc`."""
    from casher import _values

    return {
        "ok": False,
        "exception": _values.exception_blob(exc),
        "chain": _values.exception_chain(exc),
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": traceback.format_exc(),
        "rng": _drawn_before_raising(),
    }


def _drawn_before_raising() -> dict:
    try:
        from casher import _randomness

        return _randomness.drawn(_APPLIED_RNG)
    except Exception:
        return {}


def main() -> int:
    global _FRESH
    _FRESH = True
    call_path, meta_path, result_path = sys.argv[1:4]
    from casher import _transport

    try:
        with open(meta_path, "rb") as f:
            payload = pickle.load(f)
        prepare(payload)
        answer_to(result_path)
        result = answer(payload, call_path, result_path)
    except KeyboardInterrupt as exc:
        # Ctrl-C reached this process before its call ran: the caller
        # raises it, as a plain call interrupted there would.
        result = _raised(exc)
    sys.stdout.flush()
    sys.stderr.flush()
    _transport.write_result(result_path, pickle.dumps(result, protocol=5))
    return 0


if __name__ == "__main__":
    sys.exit(main())

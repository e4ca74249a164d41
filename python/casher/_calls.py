"""One `@cached` miss: send the call to a traced child, take its answer,
record it; and what a hit gives back (output, log records, the value)."""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import struct
import sys
from typing import TYPE_CHECKING, Any

import itertools

from casher import _callers, _native, _randomness, _roots, _settings, _state, _transport, _values
from casher._events import Writer, log_stream, new_mark
from casher._native import CasherError

if TYPE_CHECKING:
    from casher._cached import CachedFunction

log = logging.getLogger("casher")


# -- values ---------------------------------------------

def dumps(value: Any) -> bytes:
    """A return value as stored."""
    return pickle.dumps(value, protocol=5)


_buffer_counter = itertools.count()


def _buffers_stem(cache_dir: str) -> str:
    calls = os.path.join(cache_dir, "calls")
    os.makedirs(calls, exist_ok=True)
    return os.path.join(calls, f"{os.getpid()}-{next(_buffer_counter)}")


def loads(value: Any) -> Any:
    """A stored value: pickle bytes, or (pickle, paths of its out-of-band
    buffers), mapped without a copy (`_values`)."""
    return _values.loads(value)


# -- sending a call -----------------------------------------------------

def _write_call(f: Any, args: tuple, kwargs: dict, by_value: bool, main_there: bool) -> None:
    """Pickle protocol 5 with out-of-band buffers: large arrays go to the
    channel as raw bytes and are memory-mapped by the child, never copied in
    between (`_transfer.dumps`: instances of classes defined in `__main__`
    arrive too)."""
    from casher import _transfer

    buffers: list[pickle.PickleBuffer] = []
    pickled = _transfer.dumps((args, kwargs), buffers, by_value, main_there)
    raws = [b.raw() for b in buffers]
    f.write(struct.pack("<Q", len(raws)))
    f.write(struct.pack(f"<{len(raws) + 1}Q", len(pickled), *(r.nbytes for r in raws)))
    f.write(pickled)
    for raw in raws:
        f.write(raw)


def _pickled(value: Any) -> bytes | None:
    try:
        import cloudpickle

        return cloudpickle.dumps(value, protocol=5)
    except Exception:
        try:
            return pickle.dumps(value, protocol=5)
        except Exception:
            return None


def _main_spec() -> str | None:
    """`pkg.mod` when the caller was started as `python -m pkg.mod`."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    return name if name and name != "__main__" else None


def _found_by_name(item: Any) -> bool:
    """A module, or a definition bound under its own name: a fresh import
    has the same one (if not, the child says so), nothing to send."""
    return item.fingerprint.startswith("module:") or item.fingerprint == f"ref:{item.module}:{'.'.join(item.path)}"


class ChildTraceback(Exception):
    """The traceback of an exception raised in the traced process."""


def _child_exception(result: dict, qualname: str) -> BaseException:
    exc = _values.rebuild_chain(result.get("chain"))
    if exc is None:
        exc = CasherError(f"{qualname} raised {result['type']}: {result['message']}")
    where = ChildTraceback("in the traced process running " + qualname + ":\n" + result["traceback"])
    if exc.__cause__ is None and exc.__context__ is None:
        exc.__cause__ = where
        exc.__suppress_context__ = False  # as raised (setting a cause sets it)
    else:  # raised from another: that is what a plain call shows
        log.debug("%s", where)
    return exc


def server_payload(fn: "CachedFunction") -> dict:
    """What decides which fork server serves `fn` (`casher._server`)."""
    return {
        "module": fn._module,
        "file": fn._file,
        "qualname": fn._func.__qualname__,
        "main_spec": _main_spec() if fn._module == "__main__" else None,
        "sys_path": list(sys.path),
        "argv": list(sys.argv),
    }


def _end_as_the_call_did(run: Any, qualname: str) -> None:
    """The call ended its own process (`os._exit`, a signal it sent itself
    or got, a crash in native code): a plain call ends its caller's so, and
    this one does too, with the same status, skipping the same clean-up
    (what the call printed was forwarded already). Returns only when the
    signal is handled or ignored here, where a plain call would go on."""
    signum = run.exit_signal
    log.debug("%s ended its process (%s): so does the caller", qualname, f"signal {signum}" if signum else f"status {run.exit_code}")
    if signum is None:
        os._exit(run.exit_code)
    os.kill(os.getpid(), signum)
    raise CasherError(
        f"{qualname} ended its process with signal {signum}, which this process handles: "
        "a plain call would have gone on after the handler; nothing was cached"
    )


class Call:
    """A miss of `fn` under `key`."""

    def __init__(self, fn: "CachedFunction", cache: _native.Cache, key: str, function_blob: bytes | None, state: list, settings: list = (), rng: dict | None = None, settings_print: str | None = None) -> None:
        self.fn, self.cache, self.key = fn, cache, key
        self.function_blob = function_blob
        self.state = state
        self.settings = list(settings)
        self.settings_print = settings_print if settings_print is not None else _settings.fingerprint(self.settings)
        self.rng = rng or {}
        self.qualname = fn._func.__qualname__
        # The child loads the caller's script as its `__main__` (the
        # function is defined there): `__main__` values go by reference.
        self.main_there = function_blob is None and fn._func.__module__ == "__main__"
        self.settings_blob = _settings.dumps(self.settings, self.main_there)
        # The call's output, with its log records and warnings framed in it.
        self.writer = Writer(new_mark())

    def _payload(self) -> dict:
        from casher._cached import _logging_levels

        return {
            **server_payload(self.fn),
            "function": self.function_blob,
            "state": [],  # filled in by the path that runs the call (`state_entries`)
            "logging": _logging_levels(),
            "settings": self.settings_blob,
            "settings_print": self.settings_print,
            # Pickled once here: the server hands the request to its waiting
            # child without rebuilding the generators' states.
            "rng": pickle.dumps(self.rng, protocol=5),
            "log_stream": log_stream(),
            "mark": self.writer.mark,
            "callers": _callers.stack(),
            # Large buffers of the result go to files beside the store's
            # objects (outside what is traced), adopted by rename.
            "buffers_stem": _buffers_stem(self.cache.cache_dir),
        }

    def state_entries(self, fresh: dict) -> list:
        """The caller's state for the child: (module, path, fingerprint,
        pickled value or None, known). `fresh`: the fingerprints a fork
        server's fresh import has (learned from its earlier calls); an
        equal value is `known` there, so it is neither pickled nor compared
        again (a large DataFrame would cost both on every miss)."""
        entries = []
        for i in self.state:
            known = not i.fingerprint.startswith(_state.UNKNOWN) and fresh.get((i.module, tuple(i.path))) == i.fingerprint
            blob = None if known or _found_by_name(i) else _pickled(i.value)
            entries.append((i.module, i.path, i.fingerprint, blob, known))
        return entries

    def run(self, args: tuple, kwargs: dict) -> Any:
        from casher import _server

        payload = self._payload()
        if self.settings_blob is None:  # a formatter holding what cannot be pickled
            self.fn._warn_once(
                "settings",
                "%s runs uncached: library settings it would see cannot be sent to the traced process",
                self.qualname,
            )
            return self.fn._func(*args, **kwargs)
        by_value = self.function_blob is not None

        def write_call(path: str, a: tuple, kw: dict) -> None:
            with open(path, "wb") as f:
                _write_call(f, a, kw, by_value, self.main_there)

        # The module's traced fork server first (None: it is off, the
        # function travels by value, or the server cannot serve this call).
        writer = self.writer
        served = _server.call(self.cache, payload, args, kwargs, writer, write_call, self.state_entries)
        if served is not None:
            writer.close()
            run, result = served
        else:
            fresh = self._run_fresh(payload, args, kwargs)
            if fresh is None:  # unpicklable arguments cannot cross to the child
                return self.fn._func(*args, **kwargs)
            run, result = fresh
        return self._finish(run, result, args, kwargs)

    def _run_fresh(self, payload: dict, args: tuple, kwargs: dict) -> tuple[Any, dict | None] | None:
        """A fresh traced interpreter for this call alone."""
        channel = _transport.Channel(self.cache.cache_dir)
        try:
            try:
                with channel.writer("call") as f:
                    _write_call(f, args, kwargs, self.function_blob is not None, self.main_there)
            except Exception as exc:  # unpicklable arguments cannot cross to the child
                log.warning("%s not cached: its arguments cannot be sent to the traced process (%s)", self.qualname, exc)
                return None
            with channel.writer("meta") as f:
                pickle.dump(dict(payload, state=self.state_entries({})), f, protocol=5)
            argv = [sys.executable, "-m", "casher._child", *(channel.path(n) for n in _transport.NAMES)]
            writer = self.writer = Writer(self.writer.mark)  # this run's output only
            run = self.cache.run(argv, [], writer)
            writer.close()
            data = channel.result()
        finally:
            channel.close()
        return run, _transport.answer(data)

    def _finish(self, run: Any, result: dict | None, args: tuple, kwargs: dict) -> Any:
        """The traced call's answer: recorded, and returned or raised."""
        if result is not None and result.get("ended"):
            _end_as_the_call_did(run, self.qualname)
        if result is not None and result.get("ending"):
            # It returned, then what runs at its end (its exit handlers, the
            # threads it left) ended the child: a plain run ends so at its
            # own end, which the caller's exit does here.
            atexit.register(_end_as_the_call_did, run, self.qualname)
            why = "what runs at its end (its exit handlers, the threads it left) ended its process"
            result = dict(result, uncacheable=[*result.get("uncacheable", ()), why])
        if result is None:
            raise CasherError(
                f"the traced process running {self.qualname} exited with status {run.exit_code} "
                "without a result (it crashed or was killed); nothing was cached"
            )
        if not result["ok"]:
            if "state" in result:
                self.fn._warn_once(
                    "state",
                    "%s runs uncached: module-level values it uses (%s) cannot be shown equal to "
                    "a fresh import's (a connection, an open socket...), and cannot be sent to the traced process",
                    self.qualname,
                    result["state"],
                )
                return self.fn._func(*args, **kwargs)
            if "import" in result:
                self.fn._warn_once(
                    "import",
                    "%s runs uncached: importing its module again in the traced process failed (%s)",
                    self.qualname,
                    result["import"],
                )
                return self.fn._func(*args, **kwargs)
            # It drew before raising: the caller's generators advance too.
            _randomness.apply(result.get("rng") or {})
            raise _child_exception(result, self.qualname)
        if result.get("executed"):
            self._check_reach(result["executed"])
        buffers = result.get("buffers") or []
        try:
            # Mapped before the store adopts the buffer files (by rename: the
            # mappings stay valid), so the value is never copied.
            value = loads((result["value"], buffers) if buffers else result["value"])
            if self.function_blob is None and b"cloudpickle" in result["value"]:
                result, buffers = self._by_reference(value, result, buffers)
            self._record(run, result, buffers)
        finally:
            _values.discard(buffers)
        _values.apply_extras(self.fn._func, {"defaults": result.get("defaults"), "rng": result.get("rng")})
        return value

    def _by_reference(self, value: Any, result: dict, buffers: list[str]) -> tuple[dict, list[str]]:
        """The value pickled again here when the child had to send it by
        value (it holds an instance of a class from the caller's `__main__`
        that came with an argument): here that class is the caller's own,
        pickled by name, so a hit in a later run of the script gives an
        instance of its class, as a plain call does."""
        try:
            blob, again = _values.dump_to_files(value, _buffers_stem(self.cache.cache_dir))
        except Exception:
            return result, buffers
        _values.discard(buffers)
        return dict(result, value=blob), again

    def _record(self, run: Any, result: dict, buffers: list[str]) -> None:
        reasons = [*run.uncacheable, *result.get("uncacheable", ())]
        if reasons:
            log.warning("%s not cached: %s", self.qualname, "; ".join(reasons))
        else:
            try:
                missed = self.cache.record(
                    run,
                    self.key,
                    self.fn._description,
                    _values.pack_value(result["value"], result.get("defaults"), result.get("rng"), self.writer.mark if self.writer.framed else None),
                    list(_roots.non_local_roots()),
                    self.fn._file,
                    self.fn._top_level_name() if self.function_blob is None else None,
                    [(path, line) for path, line, _ in result["ran"]],
                    sorted(set(result["env"]) | set(self.fn._env)),
                    buffers=buffers,
                    # The generators it drew from, as they were when it started.
                    state=[(name, _randomness.digest(self.rng[name])) for name in result.get("rng") or () if name in self.rng],
                )
                for path, line in missed:
                    log.debug("%s executed code at %s:%d that the static analysis did not reach; keyed on the whole file", self.qualname, path, line)
            except Exception as exc:
                log.warning("%s", exc)

    def _check_reach(self, executed: list) -> None:
        """CASHER_CHECK_REACH=1: every project function the call executed
        must lie in a statement the static analysis reached. One that does
        not is a bug in the analysis (the run-time facts still make the
        entry correct): said loudly so it gets reported."""
        function = self.fn._top_level_name()
        if self.function_blob is not None or not function:
            return
        reached = self.cache.reached(self.fn._file, function)
        if reached is None:
            return
        spans: dict[str, list[tuple[int, int]]] = {}
        for path, first, last in reached:
            spans.setdefault(os.path.realpath(path), []).append((first, last))
        for filename, line, qualname in executed:
            real = _roots.project_file(filename)
            if real is None:
                continue
            if not any(first <= line <= last for first, last in spans.get(real, ())):
                log.warning(
                    "CASHER_CHECK_REACH: %s executed %s (%s:%d), which the static analysis did not reach; "
                    "please report this as a casher bug",
                    self.qualname,
                    qualname,
                    real,
                    line,
                )

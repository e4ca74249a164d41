"""`@cached`: a function's result, printed output and written files, reused
while its code, arguments, files read and selected env vars are unchanged."""

from __future__ import annotations

import atexit
import codecs
import functools
import inspect
import itertools
import logging
import os
import pickle
import site
import struct
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from casher import _hashing, _native
from casher._native import CasherError

log = logging.getLogger("casher")
if os.environ.get("CASHER_LOG"):
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("casher: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(os.environ["CASHER_LOG"].upper())

_caches: dict[tuple[str, str | None], _native.Cache] = {}


@atexit.register
def _flush_counters() -> None:
    for cache in list(_caches.values()):
        try:
            cache.flush()
        except Exception:
            pass

_counter = itertools.count()
_lock = threading.Lock()


def _cache(cache_dir: str | None, cwd: str | None = None) -> _native.Cache:
    key = (cwd or os.getcwd(), cache_dir)
    with _lock:
        if key not in _caches:
            _caches[key] = _native.Cache(key[0], cache_dir, sys.executable)
        return _caches[key]


def _non_local_roots() -> list[str]:
    """Where the interpreter's own code lives: files there are identified by
    content (a version change is a change), not as project code."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(v for k, v in sysconfig.get_paths().items() if k in {"stdlib", "platstdlib", "purelib", "platlib"})
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # some virtualenvs lack site.getsitepackages
        pass
    return sorted(os.path.realpath(r) for r in roots if r)


_PYTHON = "%s-%d.%d.%d" % (sys.implementation.name, *sys.version_info[:3])


class _Writer:
    """Forwards a child's output to sys.stdout/sys.stderr as it arrives
    (so pytest's capsys and notebooks see it), decoding UTF-8 across chunks."""

    def __init__(self) -> None:
        self._decoders = {1: codecs.getincrementaldecoder("utf-8")("replace"), 2: codecs.getincrementaldecoder("utf-8")("replace")}

    def __call__(self, stream: int, data: bytes) -> None:
        target = sys.stdout if stream == 1 else sys.stderr
        target.write(self._decoders[stream].decode(data))
        target.flush()


def _replay(chunks: Iterable[tuple[int, bytes]]) -> None:
    writer = _Writer()
    for stream, data in chunks:
        writer(stream, data)


class CachedFunction:
    """The callable `@cached` returns; also offers `cache_info`,
    `cache_clear` and `explain`."""

    def __init__(self, func: Callable[..., Any], env: Iterable[str] = (), cache_dir: str | os.PathLike[str] | None = None, ignore: Iterable[str] = ()) -> None:
        functools.update_wrapper(self, func)
        self.__casher_original__ = func
        self._func = func
        self._env = sorted(set(env))
        self._cache_dir = os.fspath(cache_dir) if cache_dir is not None else None
        self._ignore = set(ignore)
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        simple = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        self._positional = [p.name for p in params] if simple else [None]
        unknown = self._ignore - set(self._signature.parameters)
        if unknown:
            raise TypeError(f"@cached(ignore=...) names no parameter of {func.__qualname__}: {sorted(unknown)}")
        self._hits = 0
        self._misses = 0
        self._warned = False
        self._file = os.path.realpath(inspect.getsourcefile(func) or func.__code__.co_filename)
        self._module = func.__module__
        self._description = f"{self._module}:{func.__qualname__} ({self._file})"
        self._not_importable = self._reimportable()

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self, obj)

    # -- identity ---------------------------------------------------------

    def _reimportable(self) -> str | None:
        """Why the child could not import this function, or None."""
        qualname = self._func.__qualname__
        if "<locals>" in qualname or "<lambda>" in qualname:
            return "it is a closure or lambda"
        if self._module == "__main__":
            main = sys.modules.get("__main__")
            if not getattr(main, "__file__", None):
                return "it is defined in an interactive session or notebook"
        if not os.path.isfile(self._file):
            return f"its source file {self._file} is not on disk"
        return None

    def _arguments(self, args: tuple, kwargs: dict) -> Iterable[tuple[str, Any]]:
        if not kwargs and len(args) == len(self._positional):
            return zip(self._positional, args)  # the common case, without bind()
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments.items()

    def _key(self, args: tuple, kwargs: dict) -> str:
        h = _native.Hasher()
        for name, value in self._arguments(args, kwargs):
            if name in self._ignore:
                continue
            _hashing._text(h, b"param", name)
            _hashing.feed(h, value, name)
        env = [(name, os.environ.get(name)) for name in self._env]
        return _native.run_key(self._func.__qualname__, self._file, h.hexdigest(), _PYTHON, env)

    # -- calling ------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if os.environ.get("CASHER_CHILD") == "1":
            return self._func(*args, **kwargs)
        key = self._key(args, kwargs)  # TypeError for unsupported arguments
        if self._not_importable:
            return self._call_in_process(key, args, kwargs)
        try:
            cwd = os.getcwd()
            cache = _cache(self._cache_dir, cwd)
            hit, found, value = cache.lookup(key, cwd)
        except Exception as exc:  # a broken cache never breaks the program
            log.warning("cache unavailable (%s); running %s uncached", exc, self._func.__qualname__)
            return self._func(*args, **kwargs)
        if hit:
            self._hits += 1
            log.debug("%s: hit %s", self._func.__qualname__, key[:16])
            _replay(found)
            return pickle.loads(value)
        self._misses += 1
        log.debug("%s: miss %s (%s)", self._func.__qualname__, key[:16], found)
        return self._run_traced(cache, key, args, kwargs)

    def _run_traced(self, cache: _native.Cache, key: str, args: tuple, kwargs: dict) -> Any:
        from casher import _server

        # Several processes missing this key at once: one computes, the
        # others wait for it and then find its result.
        lock = _server.lock_key(cache, key, self._func.__qualname__)
        try:
            if lock is not None and lock.waited:
                hit, found, value = cache.lookup(key, os.getcwd())
                if hit:
                    _replay(found)
                    return pickle.loads(value)
            payload = self._payload()
            served = _server.call(cache, payload, args, kwargs, _Writer(), _write_call)
            if served is None:
                served = self._run_fresh(cache, payload, args, kwargs)
            if served is None:  # the arguments cannot cross to the child
                return self._func(*args, **kwargs)
            return self._finish_traced(cache, key, *served)
        finally:
            if lock is not None:
                lock.release()

    def _payload(self) -> dict:
        """What the traced process needs to find the function."""
        return {"module": self._module, "file": self._file, "qualname": self._func.__qualname__, "sys_path": list(sys.path)}

    def _run_fresh(self, cache: _native.Cache, payload: dict, args: tuple, kwargs: dict) -> tuple[Any, dict] | None:
        """A fresh traced interpreter for this call alone."""
        calls = Path(cache.cache_dir) / "calls"
        calls.mkdir(parents=True, exist_ok=True)
        stem = calls / f"{os.getpid()}-{next(_counter)}"
        call_file, result_file = Path(f"{stem}.call"), Path(f"{stem}.result")
        try:
            try:
                _write_call(call_file, args, kwargs)
            except Exception as exc:  # unpicklable arguments cannot cross to the child
                log.warning(
                    "%s not cached: its arguments cannot be sent to the traced process (%s)",
                    self._func.__qualname__,
                    exc,
                )
                return None
            with open(f"{call_file}.meta", "wb") as f:
                pickle.dump(payload, f)
            argv = [sys.executable, "-m", "casher._child", str(call_file), str(result_file)]
            run = cache.run(argv, [], _Writer())
            if not result_file.exists():
                return run, None
            with open(result_file, "rb") as f:
                return run, pickle.load(f)
        finally:
            for path in (call_file, Path(f"{call_file}.meta"), result_file):
                path.unlink(missing_ok=True)

    def _finish_traced(self, cache: _native.Cache, key: str, run: Any, result: dict | None) -> Any:
        """The traced call's answer: recorded, and returned or raised."""
        if result is None:
            raise CasherError(
                f"the traced process running {self._func.__qualname__} exited with status {run.exit_code} "
                "without a result (it crashed or was killed); nothing was cached"
            )
        if not result["ok"]:
            raise _child_exception(result, self._func.__qualname__)
        if result.get("executed"):
            self._check_reach(cache, result["executed"])
        if run.uncacheable:
            log.warning("%s not cached: %s", self._func.__qualname__, "; ".join(run.uncacheable))
        else:
            try:
                cache.record(run, key, self._description, result["value"], _non_local_roots(), self._file, self._top_level_name())
            except Exception as exc:
                log.warning("%s", exc)
        return pickle.loads(result["value"])

    def _in_process_identity(self) -> str:
        """For functions run in-process: their source (normalized) and the
        values of their closure cells stand in for re-importable code."""
        import inspect as _inspect
        import textwrap

        h = _native.Hasher()
        try:
            source = textwrap.dedent(_inspect.getsource(self._func))
            _hashing._text(h, b"source", _native.source_hash(source) or source)
        except (OSError, TypeError):
            _hashing._text(h, b"code", self._func.__code__.co_code.hex())
        self._untracked = []
        for name, cell in zip(self._func.__code__.co_freevars, self._func.__closure__ or ()):
            try:
                value = cell.cell_contents
                _hashing._text(h, b"cell", name)
                _hashing.feed(h, value, name)
            except (ValueError, TypeError):
                self._untracked.append(name)
        return h.hexdigest()

    def _call_in_process(self, key: str, args: tuple, kwargs: dict) -> Any:
        from casher import _inprocess

        identity = self._in_process_identity()
        key = _native.run_key(self._func.__qualname__ + "#" + identity, self._file, key, _PYTHON, [])
        if not self._warned:
            self._warned = True
            extra = f"; closure variables not tracked: {', '.join(self._untracked)}" if self._untracked else ""
            log.warning(
                "%s runs in-process (%s): files read by native code and globals it uses are not tracked%s",
                self._func.__qualname__,
                self._not_importable,
                extra,
            )
        try:
            cwd = os.getcwd()
            cache = _cache(self._cache_dir, cwd)
            hit, found, value = cache.lookup(key, cwd)
        except Exception as exc:
            log.warning("cache unavailable (%s); running %s uncached", exc, self._func.__qualname__)
            return self._func(*args, **kwargs)
        if hit:
            self._hits += 1
            _replay(found)
            return pickle.loads(value)
        self._misses += 1
        result, seen = _inprocess.run(self._func, args, kwargs)
        try:
            blob = pickle.dumps(result, protocol=5)
            run = cache.observed(seen.reads, seen.listed, seen.written, seen.deleted, seen.chunks)
            cache.record(run, key, self._description, blob, _non_local_roots(), self._file, None)
        except Exception as exc:
            log.warning("%s not cached: %s", self._func.__qualname__, exc)
        return result

    def _check_reach(self, cache: _native.Cache, executed: list) -> None:
        """CASHER_CHECK_REACH=1: every project function the call executed
        must lie in a statement the static analysis reached. One that does
        not is a bug in the analysis (the run-time safety net still makes
        the entry correct): said loudly so it gets reported."""
        function = self._top_level_name()
        reached = cache.reached(self._file, function) if function else None
        if reached is None:
            return
        spans: dict[str, list[tuple[int, int]]] = {}
        for path, first, last in reached:
            spans.setdefault(os.path.realpath(path), []).append((first, last))
        roots = _non_local_roots()
        casher_dir = os.path.dirname(os.path.realpath(__file__))
        for filename, line, qualname in executed:
            real = os.path.realpath(filename)
            if not real.endswith(".py") or real.startswith(casher_dir) or any(real.startswith(r + os.sep) for r in roots):
                continue
            if not any(first <= line <= last for first, last in spans.get(real, ())):
                log.warning(
                    "CASHER_CHECK_REACH: %s executed %s (%s:%d), which the static analysis did not reach; "
                    "please report this as a casher bug",
                    self._func.__qualname__,
                    qualname,
                    real,
                    line,
                )

    def _top_level_name(self) -> str | None:
        """The function's name when function-level analysis applies (a
        top-level function); methods and nested functions use whole modules."""
        qualname = self._func.__qualname__
        return None if "." in qualname else qualname

    # -- introspection ---------------------------------------------------

    def cache_info(self) -> dict[str, int]:
        """Hits and misses in this process, and entries in the store."""
        return {"hits": self._hits, "misses": self._misses, "entries": _cache(self._cache_dir).entries(self._description)}

    def cache_clear(self) -> int:
        """Removes every stored result of this function; returns how many."""
        return _cache(self._cache_dir).clear(self._description)

    def explain(self, *args: Any, **kwargs: Any) -> str:
        """'hit', or 'miss: ' and what changed since the newest variant."""
        return _cache(self._cache_dir).explain(self._key(args, kwargs))


def _write_call(path: Path, args: tuple, kwargs: dict) -> None:
    """Pickle protocol 5 with out-of-band buffers: large arrays go to the file
    as raw bytes and are memory-mapped by the child, never copied in between."""
    from casher import _transfer

    buffers: list[pickle.PickleBuffer] = []
    pickled = _transfer.dumps((args, kwargs), buffers)
    raws = [b.raw() for b in buffers]
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raws)))
        f.write(struct.pack(f"<{len(raws) + 1}Q", len(pickled), *(r.nbytes for r in raws)))
        f.write(pickled)
        for raw in raws:
            f.write(raw)


class ChildTraceback(Exception):
    """The traceback of an exception raised in the traced process."""


def _child_exception(result: dict, qualname: str) -> BaseException:
    exc = None
    if result.get("exception") is not None:
        try:
            exc = pickle.loads(result["exception"])
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = CasherError(f"{qualname} raised {result['type']}: {result['message']}")
    exc.__cause__ = ChildTraceback("in the traced process running " + qualname + ":\n" + result["traceback"])
    return exc


def cached(
    func: Callable[..., Any] | None = None,
    *,
    env: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    ignore: Iterable[str] = (),
) -> Any:
    """Cache a function by its code, arguments, files read and `env` vars.

    Use as `@cached` or `@cached(env=["MODE"], ignore=["logger"])`.
    """
    if func is not None:
        return CachedFunction(func)

    def wrap(f: Callable[..., Any]) -> CachedFunction:
        return CachedFunction(f, env=env, cache_dir=cache_dir, ignore=ignore)

    return wrap

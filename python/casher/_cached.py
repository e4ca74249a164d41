"""`@cached`: a function's result, printed output, log records and written
files, reused while its code, arguments, the caller's state it reaches,
files read and env vars read are unchanged."""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import os
import sys
import threading
from typing import Any, Callable, Iterable, NamedTuple

from casher import _byvalue, _calls, _events, _hashing, _keylock, _native, _peek, _randomness, _server, _settings, _state, _values, _walk
from casher._native import CasherError

log = logging.getLogger("casher")
if os.environ.get("CASHER_LOG"):
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("casher: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(os.environ["CASHER_LOG"].upper())
    log.propagate = False  # said once, not again by the application's handlers

_caches: dict[tuple[str, str | None], _native.Cache] = {}
_lock = threading.Lock()


@atexit.register
def _flush_counters() -> None:
    for cache in list(_caches.values()):
        try:
            cache.flush()
        except Exception:
            pass


def _cache(cache_dir: str | None, cwd: str | None = None) -> _native.Cache:
    key = (cwd or os.getcwd(), cache_dir)
    with _lock:
        if key not in _caches:
            _caches[key] = _native.Cache(key[0], cache_dir, sys.executable)
        return _caches[key]


_PYTHON = "%s-%d.%d.%d" % (sys.implementation.name, *sys.version_info[:3])


class CacheInfo(NamedTuple):
    """Like `functools`' CacheInfo: hits and misses in this process, and
    `currsize`, the entries in the store (also readable as `entries`)."""

    hits: int
    misses: int
    maxsize: int | None
    currsize: int

    @property
    def entries(self) -> int:
        return self.currsize

    def __getitem__(self, index: Any) -> Any:  # type: ignore[override]
        if isinstance(index, str):  # info["hits"], as before 0.2
            return getattr(self, index)
        return tuple.__getitem__(self, index)


def _logging_levels() -> tuple[dict[str, int], int]:
    """The caller's logging configuration that decides which records exist.

    casher's own loggers are left out: `CASHER_LOG=debug` (or a caller
    turning casher's logging up) changes what casher says, not what the
    function logs, and must not make every call miss."""
    manager = logging.Logger.manager
    levels = {"": logging.getLogger().level}
    for name, logger in list(manager.loggerDict.items()):
        if name == "casher" or name.startswith("casher."):
            continue
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels, manager.disable


class CachedFunction(_peek.Wrapper):
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
        self._lazy = inspect.isgeneratorfunction(func) or inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
        self._said_lazy = False
        params = list(self._signature.parameters.values())
        simple = all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        self._positional = [p.name for p in params] if simple else [None]
        unknown = self._ignore - set(self._signature.parameters)
        if unknown:
            raise TypeError(f"@cached(ignore=...) names no parameter of {func.__qualname__}: {sorted(unknown)}")
        self._hits = 0
        self._misses = 0
        self._warned: set[str] = set()
        self._file = os.path.realpath(inspect.getsourcefile(func) or func.__code__.co_filename)
        self._module = func.__module__
        self._description = f"{self._module}:{func.__qualname__} ({self._file})"
        self._mode: str | None = None  # "import" or "value", decided at the first call

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled by reference, as the function it decorates would be (a
        process pool sending it to a worker): the name it is bound under in
        its module, when that is this wrapper. One in `__main__` (a
        notebook, `python -c`) travels by value, as before: cloudpickle
        sends it so to a call's child."""
        if self._module != "__main__" and self._bound() is self:
            return self._func.__qualname__
        return super().__reduce_ex__(protocol)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self, obj)

    # -- identity ---------------------------------------------------------

    def _importable(self) -> str | None:
        """Why the child could not import this function by name, or None."""
        qualname = self._func.__qualname__
        if "<locals>" in qualname or "<lambda>" in qualname:
            return "it is a closure or lambda"
        module = sys.modules.get(self._module)
        if self._module == "__main__":
            if not getattr(module, "__file__", None):
                return "it is defined in an interactive session, a notebook or `python -c`"
        if not os.path.isfile(self._file):
            return f"its source file {self._file} is not on disk"
        if _peek.original(self._bound()) is not self._func:
            return f"{self._module}.{qualname} is not this function once imported"
        return None

    def _bound(self) -> Any:
        """What the function's module binds under its qualified name (None
        if nothing): this wrapper, when it was applied as a decorator."""
        target: Any = sys.modules.get(self._module)
        for part in self._func.__qualname__.split("."):
            target = getattr(target, part, None)
        return target

    def _decide_mode(self) -> str:
        if self._mode is None:
            why = self._importable()
            self._why_by_value = why
            self._mode = "import" if why is None else "value"
        return self._mode

    def _arguments(self, args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
        if not kwargs and len(args) == len(self._positional):
            return list(zip(self._positional, args))  # the common case, without bind()
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return list(bound.arguments.items())

    def _feed_argument(self, h: Any, name: str, value: Any, first: bool) -> None:
        _hashing._text(h, b"param", name)
        custom = getattr(type(value), "__casher_key__", None)
        if custom is not None:
            t = type(value)
            _hashing._text(h, b"casher_key", f"{t.__module__}.{t.__qualname__}")
            value = custom(value)
        try:
            _hashing.feed(h, value, name)
        except TypeError:
            if first and "." in self._func.__qualname__ and name in ("self", "cls"):
                t = type(value)
                raise TypeError(
                    f"casher cannot hash the instance {name!r} of {t.__module__}.{t.__qualname__} that "
                    f"{self._func.__qualname__} is called on, and a cached method's result depends on it. "
                    f"Make {t.__qualname__} a dataclass (its fields are then hashed), or define "
                    f"`def __casher_key__(self)` returning the values that decide the result "
                    f"(see docs/cache-key.md)"
                ) from None
            raise

    def _key(self, args: tuple, kwargs: dict, state: list[_state.Item] | None, settings_print: str = "") -> str:
        h = _native.Hasher()
        for i, (name, value) in enumerate(self._arguments(args, kwargs)):
            if name in self._ignore:
                continue
            try:
                self._feed_argument(h, name, value, i == 0)
            except TypeError:
                if name not in self._signature.bind(*args, **kwargs).arguments:
                    raise _DefaultNotHashable(name, value) from None
                raise
        if self._decide_mode() == "value":
            identity, complete = _byvalue.identity_and_gaps(self._func)
            _hashing._text(h, b"by-value", identity)
            self._complete = complete
        for item in state or ():
            _hashing._text(h, b"state", ".".join((item.module, *item.path)) + "=" + item.fingerprint)
        levels, disable = _logging_levels()
        _hashing._text(h, b"logging", repr((sorted(levels.items()), disable)))
        # Library settings the caller chose (pandas options, numpy print
        # options, the decimal context): a plain call would see them.
        _hashing._text(h, b"settings", settings_print)
        # The modes of files the call creates (a hit restores them as made).
        _hashing._text(h, b"umask", oct(_server._umask()))
        # The CPUs it may use: a call is told them (and runs on them), so
        # its thread pools size themselves as in a plain call.
        _hashing._text(h, b"cpus", repr(_server.cpus()))
        # `env=` names only: their values are inputs of each variant, hashed
        # with the store's secret, like the variables the call reads itself.
        return _native.run_key(self._func.__qualname__, self._file, h.hexdigest(), _PYTHON, list(self._env), os.getcwd())

    def _state(self, args: tuple, kwargs: dict, held: list[Any]) -> list[_state.Item]:
        # What the call reaches besides its function: its arguments (a
        # function passed in reads module state) and the settings' callables
        # (`held`: a float format reading a global).
        items = _walk.reached(self._func, [*args, *kwargs.values(), *held])
        if self._decide_mode() == "value":
            # What it uses from `python -c` or a notebook travels with it by
            # value; modules the child imports are compared as for any call.
            # (`__main__` included: cloudpickle sends its globals by value).
            # A file this process has open stays in the list: its call runs here.
            items = [i for i in items if _state.stays_here(i) or (i.module != "__main__" and _state.in_a_file(i.module))]
        return items

    # -- calling ------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if os.environ.get("CASHER_CHILD") == "1":
            return self._func(*args, **kwargs)
        if self._lazy:
            # A generator or coroutine runs after the call returns, in the
            # caller: there is no result to cache, only an object to hand on.
            if not self._said_lazy:
                self._said_lazy = True
                log.warning("%s is a generator or coroutine function: its calls run uncached", self._func.__qualname__)
            return self._func(*args, **kwargs)
        try:
            settings = _settings.capture()
            settings_print, held = _settings.examine(settings)
            state = self._state(args, kwargs, held)
        except Exception as exc:  # a value whose repr or pickle fails: never the program's failure
            self._warn_once("examine", "%s runs uncached: what it reaches in this process could not be examined (%s)", self._func.__qualname__, exc)
            return self._func(*args, **kwargs)
        own = [".".join((i.module, *i.path)) for i in state if _state.stays_here(i)]
        if self._decide_mode() == "value":
            own += _byvalue.own_files(self._func)
        if own:
            self._warn_once(
                "own-files",
                "%s runs uncached: it uses files this process has open at module level (%s), whose "
                "position, locks and pipes a call in another process would not share",
                self._func.__qualname__,
                ", ".join(own),
            )
            return self._func(*args, **kwargs)
        try:
            key = self._key(args, kwargs, state, settings_print)  # TypeError for unsupported arguments
        except _DefaultNotHashable as exc:
            # Not the caller's argument: its call runs as a plain call does.
            self._warn_once(
                "default",
                "%s runs uncached: the default value of its parameter %r (%s) cannot be hashed",
                self._func.__qualname__,
                exc.name,
                type(exc.value).__qualname__,
            )
            return self._func(*args, **kwargs)
        rng = _randomness.states()
        drawn_from = _randomness.digests(rng)
        try:
            cwd = os.getcwd()
            cache = _cache(self._cache_dir, cwd)
            hit, found, value = cache.lookup(key, cwd, drawn_from)
        except Exception as exc:  # a broken cache never breaks the program
            log.warning("cache unavailable (%s); running %s uncached", exc, self._func.__qualname__)
            return self._func(*args, **kwargs)
        if hit:
            return self._hit(key, found, value)
        with _keylock.hold(cache.cache_dir, key, self._func.__qualname__) as waited:
            if waited:  # another process computed it meanwhile, most likely
                try:
                    hit, found, value = cache.lookup(key, cwd, drawn_from)
                except Exception as exc:
                    hit, found = False, str(exc)
                if hit:
                    return self._hit(key, found, value)
            self._misses += 1
            log.debug("%s: miss %s (%s)", self._func.__qualname__, key[:16], found)
            function_blob = None
            if self._mode == "value":
                function_blob = _byvalue.dumps(self._func)
                if function_blob is None:
                    return self._call_in_process(cache, key, args, kwargs, rng)
            call = _calls.Call(self, cache, key, function_blob, state, settings, rng, settings_print)
            return call.run(args, kwargs)

    def _hit(self, key: str, chunks: Any, value: bytes) -> Any:
        self._hits += 1
        log.debug("%s: hit %s", self._func.__qualname__, key[:16])
        value, extras = _values.unpack_value(value)
        _events.replay(chunks, extras.get("mark"))
        _values.apply_extras(self._func, extras)
        return _calls.loads(value)

    def _warn_once(self, what: str, message: str, *args: Any) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning(message, *args)

    def _call_in_process(self, cache: _native.Cache, key: str, args: tuple, kwargs: dict, rng: dict) -> Any:
        from casher import _inprocess

        extra = "" if getattr(self, "_complete", True) else "; values it uses that cannot be hashed are not tracked"
        self._warn_once(
            "in-process",
            "%s runs in-process (%s, and it cannot be serialized): files read by native code are not tracked%s",
            self._func.__qualname__,
            self._why_by_value,
            extra,
        )
        result, seen = _inprocess.run(self._func, args, kwargs)
        drawn = _randomness.drawn(rng)
        try:
            run = cache.observed(seen.reads, seen.listed, seen.written, seen.deleted, seen.chunks)
            blob = _values.pack_value(_calls.dumps(result), None, drawn)
            state = [(name, _randomness.digest(rng[name])) for name in drawn]
            cache.record(run, key, self._description, blob, [], self._file, None, [], list(self._env), state=state)
        except Exception as exc:
            log.warning("%s not cached: %s", self._func.__qualname__, exc)
        return result

    def _top_level_name(self) -> str | None:
        """The function's name when function-level analysis applies (a
        top-level function); methods and nested functions use whole modules."""
        qualname = self._func.__qualname__
        return None if "." in qualname else qualname

    # -- introspection ---------------------------------------------------

    def cache_info(self) -> CacheInfo:
        """Hits and misses in this process, and entries in the store."""
        return CacheInfo(self._hits, self._misses, None, _cache(self._cache_dir).entries(self._description))

    def cache_clear(self) -> int:
        """Removes every stored result of this function; returns how many."""
        return _cache(self._cache_dir).clear(self._description)

    def explain(self, *args: Any, **kwargs: Any) -> str:
        """'hit', or 'miss: ' and what changed since the newest variant."""
        settings = _settings.capture()
        settings_print, held = _settings.examine(settings)
        key = self._key(args, kwargs, self._state(args, kwargs, held), settings_print)
        return _cache(self._cache_dir).explain(key, _randomness.digests(_randomness.states()))


class _DefaultNotHashable(TypeError):
    """A parameter's default value, which the caller did not pass, cannot
    be hashed (an open file as a default)."""

    def __init__(self, name: str, value: Any) -> None:
        super().__init__(name)
        self.name = name
        self.value = value


def cached(
    func: Callable[..., Any] | None = None,
    *,
    env: Iterable[str] = (),
    cache_dir: str | os.PathLike[str] | None = None,
    ignore: Iterable[str] = (),
) -> Any:
    """Cache a function by its code, arguments, files read and env vars read.

    Use as `@cached`, `@cached(env=["MODE"], ignore=["logger"])` or
    `cached(f, env=["MODE"])`. `env` names variables read by native code
    (those read through `os.environ` are recorded automatically).
    """
    if func is not None:
        return CachedFunction(func, env=env, cache_dir=cache_dir, ignore=ignore)

    def wrap(f: Callable[..., Any]) -> CachedFunction:
        return CachedFunction(f, env=env, cache_dir=cache_dir, ignore=ignore)

    return wrap


__all__ = ["CacheInfo", "CachedFunction", "CasherError", "cached"]

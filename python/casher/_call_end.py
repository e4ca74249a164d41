"""How a call's child ends (`casher._forkserver`): as a plain run's
interpreter would end for the call, which `os._exit` would skip. Threads
the call left running are waited for, the exit handlers it registered run
(not the import's: those run at the caller's own exit), and files still
open are closed, so what was written to them, and a compressed stream's
trailer, reach the disk while the call is traced."""

from __future__ import annotations

import _io
import gc
import io
import sys
import time
import weakref

# Files the import left open (a module-level log file): a plain run's
# interpreter closes them when it ends (writing what was buffered, and a
# compressed stream's trailer).
_IMPORT_FILES: list = []

# The file objects that buffer what is written to them.
_BUFFERED = (io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom)

# How long a call's child waits for the threads the call left running.
_THREADS_WAIT = 5.0


def _file_like(obj: object) -> bool:
    """A file object whose end writes something (by type first: cheap for
    the many objects that are not)."""
    kind = type(obj)
    if kind in _BUFFERED:
        return True
    module = kind.__dict__.get("__module__")
    if not isinstance(module, str) or module in ("builtins", "_io") or module.startswith(("pandas", "numpy")):
        return False
    # By the class's bases, not `isinstance`: an ABC's first check of each
    # class costs a call's child a tenth of a millisecond.
    mro = kind.__mro__
    zipfile = sys.modules.get("zipfile")
    return _io._IOBase in mro or (zipfile is not None and zipfile.ZipFile in mro)


def remember_open_files() -> None:
    """In the server, once: the file objects its import left open. What
    the import wrote to them is flushed here, once, rather than by every
    call's child (whose watch, `casher._descriptors`, would take it for
    the call's)."""
    for obj in gc.get_objects():
        if type(obj) in _BUFFERED:
            try:
                _IMPORT_FILES.append(weakref.ref(obj))
            except TypeError:
                continue
            try:
                obj.flush()
            except Exception:  # closed, or not writable: nothing to flush
                pass


def keep_stdlib_exit_handlers() -> None:
    """In the server, once imported: the exit handlers the import registered
    run when the caller's own interpreter ends, as in a plain run, never at
    the end of each call (a module removing its lock file at exit removed
    the caller's after every call). The standard library's stay (they
    finish what a call may start: `multiprocessing` pools, `logging`)."""
    import atexit

    registered = _EXIT_HANDLERS[:]
    if _ORIGINAL:  # calls see the real ones
        atexit.register, atexit.unregister = _ORIGINAL  # type: ignore[assignment]
    atexit._clear()
    for func, args, kwargs, registrant in registered:
        # Who registered it, not what it calls (`atexit.register(os.remove,
        # "app.lock")` is the module's, though `os.remove` is not).
        if registrant.partition(".")[0] in sys.stdlib_module_names:
            atexit.register(func, *args, **kwargs)


_EXIT_HANDLERS: list = []
_ORIGINAL: list = []


def watch_exit_handlers() -> None:
    """Records the exit handlers registered from now on (the import's)."""
    import atexit

    register, unregister = atexit.register, atexit.unregister
    _ORIGINAL[:] = [register, unregister]

    def recording(func, *args, **kwargs):  # type: ignore[no-untyped-def]
        caller = sys._getframe(1).f_globals.get("__name__")
        _EXIT_HANDLERS.append((func, args, kwargs, caller if isinstance(caller, str) else ""))
        return register(func, *args, **kwargs)

    def forgetting(func):  # type: ignore[no-untyped-def]
        _EXIT_HANDLERS[:] = [h for h in _EXIT_HANDLERS if h[0] != func]
        return unregister(func)

    atexit.register, atexit.unregister = recording, forgetting  # type: ignore[assignment]


def end_like_an_interpreter() -> list[str]:
    """What a plain run's interpreter does when it ends, which `os._exit`
    would skip: wait for the threads the call left running (not daemons),
    run the exit handlers the call registered, close the files still open
    (the import's, and the call's own that are still young: an older one,
    kept open past many collections, is not found). Why the call cannot be
    cached, if it cannot."""
    import atexit
    import threading

    left = []
    threads = [t for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    if threads:
        # What the interpreter calls first (a thread pool left open lets
        # its idle workers go).
        for call in reversed(getattr(threading, "_threading_atexits", [])):
            try:
                call()
            except Exception:
                pass
        # A plain caller's process goes on while they run, and may be what
        # they wait for: waited for a while, and if that is not enough, the
        # call is not cached.
        deadline = time.monotonic() + _THREADS_WAIT
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0))
        if any(t.is_alive() for t in threads):
            left.append("the call left threads running after it returned")
    atexit._run_exitfuncs()
    files = [ref() for ref in _IMPORT_FILES]
    files += [obj for generation in (0, 1) for obj in gc.get_objects(generation) if _file_like(obj)]
    # The standard streams and the buffers under them (a module that set
    # `sys.stdout` to a file: closing its buffer would lose what the call
    # printed, flushed below).
    streams = [sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__]
    streams += [getattr(s, "buffer", None) for s in streams]
    streams += [getattr(s, "raw", None) for s in streams]
    standard = {id(s) for s in streams if s is not None}
    files = [f for f in files if f is not None and id(f) not in standard]
    # All flushed before any is closed: a text file's buffer is a file of
    # its own, which may come first.
    for end in ("flush", "close"):
        for f in files:
            try:
                getattr(f, end)()
            except Exception:  # as at exit: a failing close is not the call's error
                pass
    sys.stdout.flush()
    sys.stderr.flush()
    return left

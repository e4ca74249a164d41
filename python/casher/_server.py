"""The traced fork server of `@cached` misses.

A miss used to start a fresh traced interpreter that imported the
function's module again (~800 ms with pandas). Instead, one traced server
per (interpreter, `sys.path`, module, working directory, environment)
imports the module once; each miss forks one child from it that runs
exactly one call, so every call starts from the state of a fresh import
and no state leaks from one call to the next. The tracer (`Session`) gives
each call the server's import-time observations plus its own; its output
goes to per-call pipes (passed with SCM_RIGHTS), its arguments and result
through memfds (pickle protocol 5, out-of-band buffers).

The server is replaced when an input of its import changes (stat check
before each miss, skipped while the tracer's inotify watch on them saw no
event), and dies with its caller (`PR_SET_PDEATHSIG` and the
tracer's `PTRACE_O_EXITKILL`). Where the import leaves threads running that
are not known to survive `fork` (polars' pool, a Python thread), misses use
a fresh interpreter each, said once at debug level.

Caller side (here): `call`, `warm`. Server side:
`python -m casher._forkserver`.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import pickle
import socket
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

from casher import _transport

log = logging.getLogger("casher")

_MAX_SERVERS = 8
_servers: dict[bytes, _Server] = {}
_unsafe: dict[bytes, str] = {}
_lock = threading.Lock()
_inherited: list = []


@atexit.register
def _close_sockets() -> None:
    """Our ends of the servers' sockets, closed before the interpreter
    finalizes them: an open one warns (`ResourceWarning`) where the caller
    shows such warnings, which a plain run never does. (The servers
    themselves die with this process.)"""
    with _lock:
        for server in _servers.values():
            try:
                server.sock.close()
            except OSError:
                pass


def _forget_after_fork() -> None:
    """A process forked from the caller (multiprocessing) inherits the
    servers but not their tracer thread: it starts its own. The inherited
    ones are kept alive, never used (the native side leaves them alone)."""
    global _lock
    _inherited.extend(_servers.values())
    _servers.clear()
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)

# -- the wire: 8-byte length, pickle; descriptors ride on the first part --


def _send(sock: socket.socket, obj: Any, fds: list[int] = ()) -> None:
    data = pickle.dumps(obj, protocol=5)
    data = struct.pack("<Q", len(data)) + data
    sent = socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def _recv(sock: socket.socket, max_fds: int = 0) -> tuple[Any, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, 1 << 16, max_fds) if max_fds else (sock.recv(1 << 16), [], 0, None)
    if not data:
        raise EOFError("the other side closed the connection")
    while len(data) < 8:
        more = sock.recv(8 - len(data))
        if not more:
            raise EOFError("the other side closed the connection")
        data += more
    size = 8 + struct.unpack_from("<Q", data)[0]
    if len(data) < size:
        # Into one buffer of the final size: appending chunk by chunk
        # copied a large message once per chunk (quadratic).
        buffer = bytearray(size)
        view = memoryview(buffer)
        view[: len(data)] = data
        got = len(data)
        while got < size:
            n = sock.recv_into(view[got:])
            if not n:
                raise EOFError("the other side closed the connection")
            got += n
        data = buffer
    return pickle.loads(memoryview(data)[8:]), fds


# -- caller side -------------------------------------------------------


def _limits() -> tuple:
    """Process settings a forked call inherits from the server, not from the
    caller: resource limits, the scheduling priority, the umask and the
    CPUs it may run on."""
    import resource

    limits = tuple(resource.getrlimit(getattr(resource, n)) for n in dir(resource) if n.startswith("RLIMIT_"))
    return limits, os.getpriority(os.PRIO_PROCESS, 0), _umask(), cpus()


def cpus() -> list[int] | None:
    """The CPUs this thread may run on: a traced process is told them."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _umask() -> int:
    """The process's umask, read without setting it (setting it, even back,
    races with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _identity(payload: dict) -> bytes:
    """What the server's state depends on: a different one is another server."""
    h = hashlib.blake2b(digest_size=16)
    for part in (
        sys.executable,
        os.getcwd(),
        payload["module"],
        payload["file"],
        payload.get("main_spec"),
        payload["sys_path"],
        payload.get("argv"),
        sorted(os.environ.items()),
        _limits(),
    ):
        h.update(repr(part).encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.digest()


class _Server:
    """A started server: its traced session and our end of its socket."""

    def __init__(self, native: Any, sock: socket.socket) -> None:
        self.native = native
        self.sock = sock
        self.lock = threading.Lock()
        # (module, path) -> fingerprint of that value in this server's
        # fresh import, as its calls reported it (see `Call.state_entries`).
        self.fresh: dict[tuple[str, tuple[str, ...]], str] = {}

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            self.native.close()

    def call(self, payload: dict, args: tuple, kwargs: dict, writer: Callable[[int, bytes], None], write_call: Callable, state: Callable[[dict], list]) -> tuple[Any, dict | None] | None:
        try:
            args_fd = os.memfd_create("casher-call", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            return None  # no memfd here: the fresh interpreter's file transport
        try:
            result_fd = os.memfd_create("casher-result", os.MFD_CLOEXEC)
        except OSError:
            os.close(args_fd)
            return None
        try:
            try:
                write_call(f"/proc/self/fd/{args_fd}", args, kwargs)
            except Exception:
                return None  # the fresh path says why (unpicklable arguments)
            try:
                payload = dict(payload, state=state(self.fresh))
            except Exception:
                return None  # the fresh path says why
            out_w, err_w = self.native.open_call(writer)
            try:
                _send(self.sock, payload, [args_fd, result_fd, out_w, err_w])
                os.close(out_w)
                os.close(err_w)
                out_w = err_w = -1
                (pid,), _ = _recv(self.sock)
            except BaseException:
                for fd in (out_w, err_w):
                    if fd >= 0:
                        os.close(fd)
                self.native.abort_call()
                raise
            run = self.native.finish_call(pid)
            with os.fdopen(os.dup(result_fd), "rb") as f:
                f.seek(0)
                data = f.read()
            result = _transport.answer(data)
            if result is not None:
                self.fresh.update((tuple(k), v) for k, v in result.get("fresh", ()))
            return run, result
        finally:
            os.close(args_fd)
            os.close(result_fd)


def _start(cache: Any, payload: dict) -> tuple[_Server | None, str]:
    from casher import _native

    native = _native.Server([sys.executable, "-m", "casher._forkserver"], [cache.cache_dir])
    sock = socket.socket(fileno=native.take_control())
    server = _Server(native, sock)
    try:
        setup = {key: payload.get(key) for key in ("module", "file", "main_spec", "sys_path", "argv")}
        _send(sock, dict(setup, call_cpu=native.call_cpu))
        reply, _ = _recv(sock)
    except (OSError, EOFError) as exc:
        output = native.server_output().decode("utf-8", "replace").strip()
        server.close()
        return None, f"the server failed ({exc}){': ' + output if output else ''}"
    if not reply.get("ok"):
        server.close()
        return None, reply.get("reason", "the server could not start")
    native.mark_ready()
    return server, ""


def call(cache: Any, payload: dict, args: tuple, kwargs: dict, writer: Callable[[int, bytes], None], write_call: Callable, state: Callable[[dict], list]) -> tuple[Any, dict | None] | None:
    """Runs one call in the module's fork server: (traced run, the child's
    answer, None if it died without one). None: use a fresh interpreter."""
    if os.environ.get("CASHER_FORK_SERVER", "1") == "0" or payload.get("function") is not None:
        return None
    identity = _identity(payload)
    server = _server(cache, payload, identity)
    if server is None:
        return None
    from casher._native import CasherError

    with server.lock:
        try:
            return server.call(payload, args, kwargs, writer, write_call, state)
        except (OSError, EOFError, ValueError, CasherError) as exc:
            log.debug("the traced server of %s failed (%s); running this call in a fresh interpreter", payload["module"], exc)
            _drop(identity, server)
            return None


def warm(fn: Any) -> bool:
    """Starts the traced server of `@cached` function `fn`'s module now, so
    that its first miss does not pay for the module's import. False when
    its misses use a fresh interpreter each (then this does nothing)."""
    from casher import _cached

    if not isinstance(fn, _cached.CachedFunction) or fn._decide_mode() != "import":
        return False
    if os.environ.get("CASHER_FORK_SERVER", "1") == "0":
        return False
    from casher import _calls

    cache = _cached._cache(fn._cache_dir)
    payload = _calls.server_payload(fn)
    return _server(cache, payload, _identity(payload)) is not None


def _drop(identity: bytes, server: _Server) -> None:
    with _lock:
        if _servers.get(identity) is server:
            del _servers[identity]
    _close_later(server)


def _close_later(server: _Server) -> None:
    """Ends a server off the caller's path: ending one waits for its tracer
    to see each of its processes exit, and the next call must not wait on
    that (a full test run once hung there for 300 s while a server was
    replaced). Its processes are killed by then; the thread is a daemon."""
    threading.Thread(target=server.close, name="casher-server-close", daemon=True).start()


def _server(cache: Any, payload: dict, identity: bytes) -> _Server | None:
    with _lock:
        if identity in _unsafe:
            return None
        server = _servers.get(identity)
    if server is not None:
        reason = server.native.stale()
        if reason is None:
            return server
        log.debug("replacing the traced server of %s: %s", payload["module"], reason)
        _drop(identity, server)
    # The function's static identity (needed to record this miss) is
    # computed meanwhile, on the other core: it is memoized.
    analysis = _prefetch_identity(cache, payload)
    try:
        server, reason = _start(cache, payload)
    except Exception as exc:  # a server that cannot start is never fatal
        server, reason = None, str(exc)
    if analysis is not None:
        analysis.join()
    with _lock:
        if server is None:
            if identity not in _unsafe:
                log.debug("%s: misses run in a fresh interpreter each: %s", payload["module"], reason)
            _unsafe[identity] = reason
            return None
        if len(_servers) >= _MAX_SERVERS:
            _, oldest = _servers.popitem()  # dicts keep insertion order: not the newest
            _close_later(oldest)
        _servers[identity] = server
    return server


def _prefetch_identity(cache: Any, payload: dict) -> threading.Thread | None:
    qualname = payload.get("qualname") or ""
    if "." in qualname or not qualname:
        return None  # methods and nested functions use whole modules

    def analyze() -> None:
        try:
            cache.reached(payload["file"], qualname)
        except Exception as exc:  # only a head start: recording computes it anyway
            log.debug("analysis of %s ahead of its first miss failed: %s", qualname, exc)

    thread = threading.Thread(target=analyze, name="casher-analysis", daemon=True)
    thread.start()
    return thread

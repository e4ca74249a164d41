"""The fork server's own side (`python -m casher._forkserver`, traced):
imports the function's module once, checks that forking is safe, then
forks one child per call request (see `casher._server`, the caller side)."""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import socket
import sys
import threading

from casher import _call_end, _descriptors, _placement, _prefault, _transport
from casher._server import _recv, _send, cpus

_SAFE_THREADS = {"jemalloc_bg_thd"}  # jemalloc re-creates them after fork


def _openblas_pool() -> int:
    """Worker threads of a loaded OpenBLAS (it stops them before fork and
    starts them again in the child: its own pthread_atfork handlers)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower() and line.split()[-1].startswith("/")}
    except OSError:
        return 0
    if not libs:
        return 0
    import ctypes

    workers = 0
    for path in libs:
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except OSError:
            continue
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            get = getattr(lib, name, None)
            if get is not None:
                workers += max(int(get()) - 1, 0)
                break
    return workers


# The pages the calls of each function wrote (`casher._prefault`).
_LEARNED = _prefault.Learned()

# The SIGINT handler the module's import left in place.
_IMPORT_SIGINT: list = [signal.default_int_handler]

# `after_in_child` fork handlers registered while the module was imported,
# by the module that defined each: a plain run never forks, so a handler of
# the project or a third-party library would make a served call differ.
_FORK_HANDLERS: list[str] = []


def watch_fork_handlers() -> None:
    """Records who registers `after_in_child` handlers from now on."""
    register = os.register_at_fork

    def recording(*, before=None, after_in_child=None, after_in_parent=None):  # type: ignore[no-untyped-def]
        if after_in_child is not None:
            # A bound builtin (a lock's `_at_fork_reinit`) has no module of
            # its own: its object's type has one.
            owner = getattr(after_in_child, "__module__", None) or type(getattr(after_in_child, "__self__", None)).__module__
            _FORK_HANDLERS.append(owner or "?")
        kwargs = {k: v for k, v in (("before", before), ("after_in_child", after_in_child), ("after_in_parent", after_in_parent)) if v is not None}
        register(**kwargs)

    os.register_at_fork = recording  # type: ignore[assignment]


def fork_unsafe() -> str | None:
    """Why forking this process now could deadlock a child or make it differ
    from a fresh interpreter, or None."""
    foreign = sorted({m for m in _FORK_HANDLERS if m.partition(".")[0] not in sys.stdlib_module_names and m.partition(".")[0] != "casher"})
    if foreign:
        # `random` reseeds in a child too: `_fork` restores its state.
        return f"its import registered fork handlers ({', '.join(foreign)}) a plain run never runs"
    if threading.active_count() > 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        return f"its import started Python threads ({names})"
    me = str(os.getpid())
    names = []
    for task in os.listdir("/proc/self/task"):
        if task == me:
            continue
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            names.append("?")
    unknown = [n for n in names if n not in _SAFE_THREADS]
    if len(unknown) > _openblas_pool():
        return f"its import left {len(names)} threads running ({', '.join(sorted(names))}), which fork does not copy"
    return None


def _serve_one(payload: dict, fds: list[int], pages_fd: int) -> None:
    """In the forked child: one call, its answer into the result memfd;
    then, into `pages_fd`, the pages it wrote (if the server asked)."""
    from casher import _child

    args_fd, result_fd, out_w, err_w = fds
    _prefault.warm_allocator()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    signal.signal(signal.SIGINT, _IMPORT_SIGINT[0])
    _child.answer_to(result_fd)
    # A plain call finds the import's objects (and garbage) collectable:
    # they join the oldest generation, which only a full collection walks.
    gc.unfreeze()
    # Large buffers of the value go to files named after the caller's
    # `buffers_stem` (see `casher._values.dump_to_files`).
    result = _child.answer(payload, args_fd, payload["buffers_stem"])
    # The answer as it stands, in case what runs at the call's end (its
    # exit handlers, the threads it left) ends this process.
    _transport.mark(result_fd, pickle.dumps(dict(result, ending=True), protocol=5))
    try:
        left = _call_end.end_like_an_interpreter()
    except BaseException as exc:  # the answer must reach the caller
        left = [f"casher could not end the call as an interpreter would ({type(exc).__name__}: {exc})"]
    if left:
        result["uncacheable"] = [*result.get("uncacheable", ()), *left]
    _transport.mark(result_fd, pickle.dumps(result, protocol=5))
    # The output ends here, not when the kernel has torn this process down
    # (the tracer delivers the call's report as it starts exiting).
    for fd in (1, 2):
        try:
            os.close(fd)
        except OSError:
            pass
    if payload.get("learn"):
        try:
            _prefault.send(pages_fd, _prefault.growth(), _prefault.scan(_LEARNED.regions))
        except Exception:  # only a lost speed-up
            pass


def _pages_fd() -> int:
    """Where a call's child says which pages its call wrote, when the
    server asks (`casher._prefault`): a memfd the server reads once the
    child has exited."""
    try:
        return os.memfd_create("casher-pages", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


def main() -> int:
    from casher import _child

    sock = socket.socket(fileno=3)
    setup, _ = _recv(sock)
    shown = cpus()  # before the import: what a call is shown
    sys.argv[:] = setup.get("argv") or sys.argv
    # What each call's child uses, imported once here rather than in every
    # call (each import's traced lookups cost a call about 2 ms), and
    # before `prepare`: casher's own files are not the calls' inputs.
    from casher import _callers, _events, _executed, _hashing_data, _observe, _randomness, _settings, _state, _values  # noqa: F401

    _executed.tracker([])  # its one-time probe of this interpreter, memoized
    _child.prepare(setup)
    watch_fork_handlers()
    _call_end.watch_exit_handlers()
    before = _descriptors.open_now()
    try:
        _child.load_module(setup)
    except BaseException as exc:
        _send(sock, {"ok": False, "reason": f"importing {setup['module']} failed: {type(exc).__name__}: {exc}"})
        return 1
    reason = fork_unsafe()
    if reason is not None:
        _send(sock, {"ok": False, "reason": f"fork is not safe after importing {setup['module']}: {reason}"})
        return 0
    # A script was loaded under another name (its `__main__` block must not
    # run): calls find it there instead of loading it again.
    loaded = (setup.get("main_spec") or "__casher_main__") if setup["module"] == "__main__" else None
    placement = _placement.Placement.after_import(setup.get("call_cpu"), shown)
    # Ctrl-C is for the call, not the server; the call gets the handler
    # the import left (a plain call runs with it).
    _IMPORT_SIGINT[0] = signal.getsignal(signal.SIGINT) or signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Calls whose caller has the same library settings skip applying them.
    _settings.remember_import()
    # What the import allocated stays shared with the calls: a collection in
    # a call would otherwise write to (and so copy) every page of it.
    _call_end.remember_open_files()
    _descriptors.after_server_import(before)
    _call_end.keep_stdlib_exit_handlers()
    gc.freeze()
    _LEARNED.start()
    sys.stdout.flush()
    sys.stderr.flush()
    _send(sock, {"ok": True})
    spare: tuple[int, socket.socket, int] | None = None  # forked only once calls are known as calls
    while True:
        try:
            payload, fds = _recv(sock, 4)
        except EOFError:
            return 0
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            return 1
        if loaded:
            payload = dict(payload, module=loaded)
        function = payload.get("qualname") or ""
        learn = _LEARNED.wants(function)
        payload = dict(payload, learn=learn)
        if placement is not None and not placement.server():
            placement = None
        pid = _hand_over(spare, payload, fds, placement) if spare is not None else None
        if pid is not None:
            pages_fd = spare[2]
        else:
            if spare is not None:
                os.close(spare[2])
            pages_fd = _pages_fd()
            if placement is not None:  # the child runs beside the tracer
                placement.call(0)
            pid = _fork()
            if pid == 0:
                try:
                    sock.close()
                    _serve_one(payload, fds, pages_fd)
                finally:
                    os._exit(0)
            if placement is not None:
                placement.back()
        # Closed before the next fork: a copy of the call's pipes in the
        # next child would keep its output open.
        for fd in fds:
            os.close(fd)
        _send(sock, (pid,))
        # When the server runs on other CPUs than its calls (`placement`),
        # the next call's child is forked now, while this call runs: it
        # takes its faults ahead there. Otherwise, once this one has exited
        # (not while it runs or is torn down on the same CPU), while the
        # caller records it. The pages a learning call wrote are known once
        # it has exited.
        if learn or placement is None:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        if learn:
            try:
                _LEARNED.add(function, _prefault.receive(pages_fd))
            except OSError:
                _LEARNED.usable = False
        os.close(pages_fd)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        spare = _spare(sock)


def _fork() -> int:
    """`os.fork`, keeping what a fresh interpreter would have after the same
    imports: `random` reseeds itself in a forked child (its
    `os.register_at_fork` hook), which would drop a seed the module set at
    import (`random.seed(1)` at module level)."""
    rnd = sys.modules.get("random")
    state = rnd.getstate() if rnd is not None else None
    pid = os.fork()
    if pid == 0 and state is not None:
        rnd.setstate(state)
    return pid


def _spare(sock: socket.socket) -> tuple[int, socket.socket, int] | None:
    """A child forked ahead of the next request, waiting for it: the fork is
    not on the next miss's path, nor are the copy-on-write faults its call
    is expected to take. In the child, this never returns."""
    ours, theirs = socket.socketpair()
    pages_fd = _pages_fd()
    pid = _fork()
    if pid == 0:
        try:
            ours.close()
            sock.close()
            _prefault.warm_allocator()

            def asked() -> bool:
                return bool(select.select([theirs], [], [], 0)[0])

            if _prefault.populate(_LEARNED.runs, asked):
                _prefault.grow(_LEARNED.growth, asked)
            try:
                payload, fds = _recv(theirs, 4)
            except EOFError:  # the server ended first
                os._exit(0)
            theirs.close()
            _serve_one(payload, fds, pages_fd)
        finally:
            os._exit(0)
    theirs.close()
    return pid, ours, pages_fd


def _hand_over(spare: tuple[int, socket.socket, int], payload: dict, fds: list[int], placement: _placement.Placement | None) -> int | None:
    """Gives the request to the waiting child (moved beside the tracer
    first); None if it is gone."""
    pid, channel, _ = spare
    if placement is not None:
        placement.call(pid)
    try:
        _send(channel, payload, fds)
        return pid
    except OSError:
        return None
    finally:
        channel.close()


if __name__ == "__main__":
    sys.exit(main())

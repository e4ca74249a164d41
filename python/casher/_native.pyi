"""Type stubs for the Rust extension module `casher._native`."""

import os
from typing import Callable, Sequence

__all__ = [
    "Cache",
    "CasherError",
    "Hasher",
    "Server",
    "TracedRun",
    "__version__",
    "cache_dir",
    "deps_json",
    "run_key",
    "source_hash",
    "watch_descriptors",
]

__version__: str

class CasherError(Exception):
    """Base class of casher's own errors."""

def deps_json(
    path: str | os.PathLike[str],
    function: str | None = None,
    python: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Analyze ``path`` like ``casher deps --json``; the report as JSON text.

    Raises FileNotFoundError, IsADirectoryError, SyntaxError (with filename,
    line and column) or CasherError.
    """

def cache_dir(cwd: str | os.PathLike[str], explicit: str | os.PathLike[str] | None = None) -> str:
    """The cache directory for a run started in ``cwd``."""

def source_hash(source: str) -> str | None:
    """The normalized-AST hash of a piece of source; None if it does not parse."""

def watch_descriptors(fds: Sequence[int]) -> None:
    """In a `@cached` call's child, before the call: from now on a use of
    one of `fds` (descriptors the module's import left open) makes the call
    uncacheable. Raises `CasherError` when they cannot be watched (too many,
    or the kernel refused the filter)."""

def run_key(
    function: str,
    module_path: str,
    args_digest: str,
    python: str,
    env: Sequence[str],
    cwd: str | os.PathLike[str],
) -> str:
    """The invocation key of a function call (cwd included). `env` holds the
    names of the `env=` variables; their values are inputs of each variant."""

class Hasher:
    """BLAKE3 over bytes and raw memory (the GIL released for large buffers)."""

    def __init__(self) -> None: ...
    def update(self, data: bytes) -> None: ...
    def update_memory(self, address: int, length: int) -> None: ...
    def hexdigest(self) -> str: ...

class TracedRun:
    """A traced run of a function's child process, waiting to be recorded."""

    @property
    def exit_code(self) -> int: ...
    @property
    def exit_signal(self) -> int | None:
        """The signal that ended the child, if one did."""
    @property
    def uncacheable(self) -> list[str]: ...
    def output(self) -> list[tuple[int, bytes]]: ...

class Cache:
    """The store and the tracer for ``@cached``."""

    def __init__(
        self,
        cwd: str | os.PathLike[str],
        cache_dir: str | os.PathLike[str] | None = None,
        python: str | os.PathLike[str] | None = None,
    ) -> None: ...
    @property
    def cache_dir(self) -> str: ...
    def lookup(self, key: str, cwd: str | os.PathLike[str], state: Sequence[tuple[str, str]] = ()) -> tuple[bool, object, bytes | None]:
        """(True, output chunks, value bytes) on a hit (files restored);
        (False, reason, None) on a miss. `state`: (name, digest) of the
        caller's process state a recorded call may have drawn from."""
    def flush(self) -> None: ...
    def explain(self, key: str, state: Sequence[tuple[str, str]] = ()) -> str: ...
    def observed(
        self,
        reads: Sequence[str],
        listed: Sequence[str],
        written: Sequence[str],
        deleted: Sequence[str],
        chunks: Sequence[tuple[int, bytes]],
    ) -> TracedRun: ...
    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        ignore: Sequence[str | os.PathLike[str]],
        on_output: Callable[[int, bytes], None],
    ) -> TracedRun: ...
    def record(
        self,
        run: TracedRun,
        key: str,
        description: str,
        value: bytes,
        non_local: Sequence[str],
        source: str | os.PathLike[str],
        function: str | None = None,
        executed: Sequence[tuple[str, int]] = (),
        env: Sequence[str] = (),
        buffers: Sequence[str | os.PathLike[str]] = (),
        state: Sequence[tuple[str, str]] = (),
    ) -> list[tuple[str, int]]:
        """Records a run; returns executed code the static identity missed."""
    def reached(self, source: str | os.PathLike[str], function: str) -> list[tuple[str, int, int]] | None: ...
    def clear(self, description: str) -> int: ...
    def entries(self, description: str) -> int: ...


class Server:
    """A traced fork server: imports a function's module once; each process
    it forks is one call, recorded on its own."""

    def __init__(self, argv: Sequence[str | os.PathLike[str]], ignore: Sequence[str | os.PathLike[str]]) -> None:
        """Starts `argv` traced; its descriptor 3 is the control socket."""
    @property
    def pid(self) -> int:
        """The server's process id."""
    @property
    def call_cpu(self) -> int | None:
        """The CPU the server's calls run on, when the server may run on
        others (see `casher._placement`)."""
    def take_control(self) -> int:
        """Our end of the control socket, as a descriptor the caller owns."""
    def mark_ready(self) -> None:
        """The server finished importing: processes it forks are calls now."""
    def stale(self) -> str | None:
        """Why the server must be replaced, or None."""
    def server_output(self) -> bytes:
        """What the server printed itself (a failed import's traceback)."""
    def open_call(self, on_output: Callable[[int, bytes], None]) -> tuple[int, int]:
        """Opens a call's stdout and stderr pipes; returns their write ends."""
    def finish_call(self, pid: int) -> TracedRun:
        """Waits for the call rooted at `pid` to end: the traced run."""
    def abort_call(self) -> None:
        """Drops the open call's output."""

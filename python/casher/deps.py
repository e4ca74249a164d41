"""Which code a function's cache key covers (the Python face of `casher deps`)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from casher import _native


def deps(
    path: str | os.PathLike[str],
    function: str | None = None,
    *,
    python: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Return the dependency report of ``path`` (and ``function``).

    The dict has the same keys as ``casher deps --json``: ``root``,
    ``function``, ``python``, ``digest``, ``modules``, ``warnings`` and
    ``errors``. ``python`` defaults to the running interpreter, so the
    report describes the import system this process actually uses.
    """
    interpreter = os.fspath(python) if python is not None else sys.executable
    directory = os.fspath(cache_dir) if cache_dir is not None else None
    resolved = _native.cache_dir(os.getcwd(), directory)
    report: dict[str, Any] = json.loads(
        _native.deps_json(os.fspath(path), function, interpreter, os.fspath(resolved))
    )
    return report

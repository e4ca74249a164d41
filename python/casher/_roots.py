"""Which files are project code: `.py` files outside the interpreter's own
trees (stdlib, site-packages) and outside casher itself. Shared by the
caller (what to key) and the traced child (what to report)."""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig


@functools.lru_cache(maxsize=None)
def non_local_roots() -> tuple[str, ...]:
    """Where the interpreter's own code lives: files there are identified by
    content (a version change is a change), not as project code."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(v for k, v in sysconfig.get_paths().items() if k in {"stdlib", "platstdlib", "purelib", "platlib"})
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # some virtualenvs lack site.getsitepackages
        pass
    return tuple(sorted(os.path.realpath(r) for r in roots if r))


_CASHER_DIR = os.path.dirname(os.path.realpath(__file__))


@functools.lru_cache(maxsize=None)
def _real_dir(path: str) -> str:
    """`realpath` of an absolute path without `..`: one `lstat` per
    directory not resolved before (its parent's answer is reused)."""
    parent, name = os.path.split(path)
    if not name or parent == path or name == "." or os.path.islink(path):
        return os.path.realpath(path)
    return os.path.join(_real_dir(parent), name)


def _plain(path: str) -> bool:
    """Absolute and without `..` (which `realpath` resolves after links)."""
    return os.path.isabs(path) and ".." not in path.split(os.sep)


def real_path(filename: str) -> str:
    """`os.path.realpath(filename)`, resolving each directory once per
    process: the traced server asks this of every module it imports
    (~1,000 for pandas), and `realpath`'s `lstat` of every component,
    each a stop of the tracer, was a quarter of the server's start."""
    if not _plain(filename) or os.path.islink(filename):
        return os.path.realpath(filename)
    head, tail = os.path.split(filename)
    return os.path.join(_real_dir(head), tail)


@functools.lru_cache(maxsize=4096)
def project_file(filename: str) -> str | None:
    """The real path of `filename` if it is project source, else None."""
    if not filename or filename.startswith("<") or not filename.endswith(".py"):
        return None
    real = real_path(filename)
    if real.startswith(_CASHER_DIR + os.sep):
        return None
    if any(real == r or real.startswith(r + os.sep) for r in non_local_roots()):
        return None
    return real


def project_dir(path: str) -> bool:
    """A directory on the import path that holds project code."""
    path = path or os.getcwd()
    real = _real_dir(path) if _plain(path) else os.path.realpath(path)
    return not any(real == r or real.startswith(r + os.sep) for r in non_local_roots())

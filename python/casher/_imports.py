"""The import system's decisions as inputs, instead of whole directory
listings (used in the traced child only).

CPython's `FileFinder` lists each directory on the import path once and
answers "is `name.py` here?" from that listing; traced, every such listing
is a directory input, so adding any file to a project directory (a new
module nobody imports, a data file) would invalidate every cached function
that imports from it. In the child, project directories get a finder that
asks the file system about each candidate name instead (a `stat` per name
it tries), so what is recorded is exactly what the finder decided: the
candidates it tried and found absent (an earlier path entry, a
higher-priority suffix, a package directory) become "absent" inputs, the
module it found a file input. Only a file that could shadow an imported
module invalidates. Directories of the interpreter and of installed
distributions keep the listing (they change only when packages change).
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import FileFinder

from casher._roots import project_dir


class _Probe:
    """Stands in for FileFinder's listing: membership is a `stat`."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __contains__(self, name: object) -> bool:
        try:
            os.stat(os.path.join(self.path, str(name)))
        except OSError:
            return False
        return True


class ProbingFinder(FileFinder):
    """A FileFinder that never lists its directory."""

    def _fill_cache(self) -> None:
        self._path_cache = _Probe(self.path or os.getcwd())  # type: ignore[assignment]
        self._relaxed_path_cache = _Probe(self.path or os.getcwd())  # type: ignore[assignment]


def install() -> bool:
    """Routes project directories on the import path to `ProbingFinder`.
    Returns False (nothing changed) where the import system is not the
    standard one."""
    from importlib._bootstrap_external import _get_supported_file_loaders  # type: ignore[attr-defined]

    index = next(
        (i for i, hook in enumerate(sys.path_hooks) if "FileFinder" in getattr(hook, "__qualname__", "")),
        None,
    )
    if index is None:
        return False
    original = sys.path_hooks[index]
    probing = ProbingFinder.path_hook(*_get_supported_file_loaders())

    def hook(path: str):
        if os.path.isdir(path or ".") and project_dir(path):
            return probing(path)
        return original(path)

    hook.__qualname__ = "casher_probing_FileFinder_hook"
    sys.path_hooks[index] = hook
    for path, finder in list(sys.path_importer_cache.items()):
        if isinstance(finder, FileFinder) and project_dir(path):
            del sys.path_importer_cache[path]
    return True

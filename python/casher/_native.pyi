"""Type stubs for the Rust extension module `casher._native`."""

import os

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

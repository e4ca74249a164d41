"""casher: cache Python functions and commands, with their side effects.

A result is reused only while everything it depended on is unchanged: its code
and all code it imports (compared as normalized ASTs), its arguments, the
files it read and the environment variables you selected.
"""

from __future__ import annotations

from casher._cached import CachedFunction, CacheInfo, cached
from casher._native import CasherError, __version__
from casher._server import warm
from casher.deps import deps

__all__ = ["CacheInfo", "CachedFunction", "CasherError", "__version__", "cached", "deps", "warm"]

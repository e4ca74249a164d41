"""The process's global random generators: `random`'s and numpy's legacy
one (`np.random.seed`, `np.random.rand`, scikit-learn's `random_state=None`).

A plain call draws from the caller's generators where they are, and leaves
them advanced. So the traced call starts from the caller's states (sent with
the call); a call that drew from one records that generator's state when it
started as an input (a later lookup hits only while the caller's is the
same: `np.random.seed(1)` then `seed(2)` are two results) and its state when
it ended as an output (applied to the caller after the miss and after every
hit, so the next draw in the caller is the one a plain run makes). A call
that draws nothing adds nothing: an unseeded generator, different in every
process, costs no miss.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
from typing import Any

States = dict[str, Any]


def states() -> States:
    """The generators' states in this process (of the modules imported)."""
    found: States = {}
    if "random" in sys.modules:
        found["random"] = sys.modules["random"].getstate()
    if "numpy" in sys.modules:
        try:
            found["numpy.random"] = sys.modules["numpy"].random.get_state()
        except Exception:  # a numpy without the legacy generator
            pass
    return found


def digest(state: Any) -> str:
    return hashlib.blake2b(pickle.dumps(state, protocol=5), digest_size=16).hexdigest()


def digests(found: States) -> list[tuple[str, str]]:
    """What a lookup compares with the inputs of calls that drew."""
    return sorted((name, digest(state)) for name, state in found.items())


def apply(found: States) -> States:
    """Puts the generators in these states (those whose module is imported
    here: importing numpy only to seed it would cost every miss its
    import); returns those it set."""
    applied: States = {}
    for name, state in found.items():
        if name == "random" and "random" in sys.modules:
            sys.modules["random"].setstate(state)
        elif name == "numpy.random" and "numpy" in sys.modules:
            sys.modules["numpy"].random.set_state(state)
        else:
            continue
        applied[name] = state
    return applied


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and len(a) == 5 and hasattr(a[1], "shape"):  # numpy's
        import numpy as np

        return a[0] == b[0] and a[2:] == b[2:] and bool(np.array_equal(a[1], b[1]))
    return a == b


def drawn(before: States) -> States:
    """The generators a call drew from since `before` (as `apply` returned
    it: a module first imported later starts from its own seed, which is
    not the caller's): their states now."""
    now = states()
    return {name: now[name] for name, state in before.items() if name in now and not _same(now[name], state)}

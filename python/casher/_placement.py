"""Which CPUs a fork server and its calls run on (`casher._forkserver`).

The tracer pins a traced run to its own CPU, where a ptrace stop costs
little. When the caller may use other CPUs too, the server moves itself to
those once its import is done: there it forks the next call's process, and
that process takes its copy-on-write faults ahead (`casher._prefault`),
while the current call runs beside the tracer and the caller waits, its CPU
idle. Each call is moved back beside the tracer before it runs.

A program never sees this: the tracer answers `sched_getaffinity` with the
caller's CPUs, and knows these moves for casher's own (the server is past
its import), not a program choosing its CPUs.
"""

from __future__ import annotations

import os


class Placement:
    def __init__(self, call_cpu: int, others: set[int]) -> None:
        self.call_cpu = {call_cpu}
        self.others = others
        self.moved = False

    @classmethod
    def after_import(cls, call_cpu: int | None, before: set[int] | None) -> Placement | None:
        """`before`: the CPUs the server was shown before its import. None
        when there is no other CPU, or when the import chose the server's
        CPUs itself (its calls are then told the truth, and stay put)."""
        if call_cpu is None or before is None:
            return None
        try:
            if os.sched_getaffinity(0) != before:
                return None
        except OSError:
            return None
        others = before - {call_cpu}
        return cls(call_cpu, others) if others and call_cpu in before else None

    def server(self) -> bool:
        """Moves the server to the other CPUs (once: at its first request,
        when the tracer knows it is past its import). False if it cannot."""
        if not self.moved:
            try:
                os.sched_setaffinity(0, self.others)
            except OSError:
                return False
            self.moved = True
        return True

    def call(self, pid: int) -> None:
        """Moves the process `pid`, about to run a call, beside the tracer."""
        try:
            os.sched_setaffinity(pid, self.call_cpu)
        except OSError:  # it is gone: the hand-over says so
            pass


def shown() -> set[int] | None:
    """The CPUs this process is shown (before its import)."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None

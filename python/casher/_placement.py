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

from casher._server import cpus


class Placement:
    def __init__(self, call_cpu: int, others: set[int]) -> None:
        self.call_cpu = {call_cpu}
        self.others = others
        self.moved = False

    @classmethod
    def after_import(cls, call_cpu: int | None, before: list[int] | None) -> Placement | None:
        """`before`: the CPUs the server was shown before its import. None
        when there is no other CPU, or when the import chose the server's
        CPUs itself (its calls are then told the truth, and stay put).

        A process that never chose is told `before` and really runs on
        `call_cpu` alone; one that chose is told the truth. Both facts are
        needed: an import that chose the caller's very CPUs is told
        `before` too, and only its real mask (`/proc/self/status`, which
        the tracer leaves alone) shows the choice."""
        if call_cpu is None or before is None:
            return None
        others = set(before) - {call_cpu}
        if not others or call_cpu not in before:
            return None
        try:
            if cpus() != before or _real_cpus() != {call_cpu}:
                return None
        except (OSError, ValueError):
            return None
        return cls(call_cpu, others)

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
        """Moves the process `pid`, about to run a call, beside the tracer
        (0: the server itself, for a child it forks at once)."""
        try:
            os.sched_setaffinity(pid, self.call_cpu)
        except OSError:  # it is gone: the hand-over says so
            pass

    def back(self) -> None:
        """The server back on the other CPUs, once it has forked."""
        try:
            os.sched_setaffinity(0, self.others)
        except OSError:  # only speed is lost
            pass


def _real_cpus() -> set[int]:
    """The CPUs this thread may really run on (`Cpus_allowed_list`, as
    `0-3,6`): not rewritten by the tracer, and never an input of a call
    (`/proc` is not observed)."""
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                cpus: set[int] = set()
                for part in line.split(":", 1)[1].strip().split(","):
                    first, _, last = part.partition("-")
                    cpus.update(range(int(first), int(last or first) + 1))
                return cpus
    raise ValueError("no Cpus_allowed_list")

"""`make bench`: every benchmark, side by side with the tools people use today.

Timings on a shared 2-core VM are noisy: read the ratios within one run, not
the absolute numbers across runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import deps_bench  # noqa: E402
import run_bench  # noqa: E402
import cached_bench  # noqa: E402
import forkserver_bench  # noqa: E402
import precision  # noqa: E402
import values_bench  # noqa: E402


def main() -> int:
    deps_bench.main()
    run_bench.main()
    cached_bench.main()
    values_bench.main()
    forkserver_bench.main()
    precision.main()
    # The store's own benchmark is Rust (lookup latency, store/restore vs cp).
    subprocess.run(
        ["cargo", "bench", "--quiet", "-p", "casher-store", "--bench", "store"],
        cwd=HERE.parent,
        check=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

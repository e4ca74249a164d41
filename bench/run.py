"""`make bench`: every benchmark, side by side with the tools people use today.

Timings on a shared 2-core VM are noisy: read the ratios within one run, not
the absolute numbers across runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import deps_bench  # noqa: E402


def main() -> int:
    ok = deps_bench.main()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

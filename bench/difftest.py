"""A long differential campaign for `casher run` with a random seed.

    python bench/difftest.py [--iterations N] [--seed S]     (DIFFTEST_SEED=S also sets it)

Same mutations and commands as tests/test_run_differential.py (which runs a
fixed seed in `make test`); every difference is printed with the seed, so a
failure can be replayed exactly: `DIFFTEST_SEED=<seed> python bench/difftest.py
--iterations <n>`. Exits 1 when any difference was found.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_run_differential import run_campaign


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    env_seed = os.environ.get("DIFFTEST_SEED")
    parser.add_argument("--seed", type=int, default=int(env_seed) if env_seed else random.SystemRandom().randrange(2**32))
    args = parser.parse_args()
    print(f"difftest: seed {args.seed}, {args.iterations} iterations", flush=True)
    with tempfile.TemporaryDirectory(prefix="casher-difftest-") as base:
        report = run_campaign(Path(base), args.seed, args.iterations, log=lambda m: print(m, flush=True))
    print(report.summary())
    if report.differences:
        print(f"difftest: FAILED with seed {args.seed} (replay: DIFFTEST_SEED={args.seed} python bench/difftest.py "
              f"--iterations {args.iterations})", file=sys.stderr)
        return 1
    print(f"difftest: ok, seed {args.seed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env bash
# `make demo`: the example pipeline under examples/pipeline, cached with
# @cached: a miss, then a hit; a reformat (still a hit); a logic edit (a miss).
# Then what `casher deps` says the key covers, and `casher run` on a command.
# Run with the project's venv on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$here/pipeline" "$work/pipeline"
cd "$work/pipeline"
export CASHER_DIR="$work/cache"
python="$(command -v python)"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
expect() { # expect PATTERN FILE: fail the demo when the log lacks PATTERN
  grep -q "$1" "$2" || { echo "demo failed: expected '$1' in:" >&2; cat "$2" >&2; exit 1; }
}

step "1. the pipeline, first run: every step is a miss (runs traced)"
CASHER_LOG=debug python run.py 2> "$work/log1"; cat "$work/log1"
expect "clean: miss" "$work/log1"

step "2. second run, outputs deleted first: every step is a hit (restored, output replayed)"
rm -rf out
CASHER_LOG=debug python run.py 2> "$work/log2"; cat "$work/log2"
expect "clean: hit" "$work/log2"; expect "summarize: hit" "$work/log2"
[ -f out/clean.parquet ] && [ -f out/summary.parquet ] || { echo "demo failed: outputs not restored" >&2; exit 1; }

step "2b. again, outputs left in place: what a step saw of its output before writing it is an input (a step may branch on it), so this new state is recorded once"
CASHER_LOG=debug python run.py 2> "$work/log2b"; cat "$work/log2b"
expect "clean: miss .*clean.parquet now exists" "$work/log2b"

step "3. reformat a helper two imports deep (black + a comment): still hits"
python -m black -q --line-length 60 pipeline/helpers/cleaning.py
sed -i 's/^def drop_refunds/# a new comment\ndef drop_refunds/' pipeline/helpers/cleaning.py
CASHER_LOG=debug python run.py 2> "$work/log3"; cat "$work/log3"
expect "clean: hit" "$work/log3"

step "4. change the helper's logic: clean misses and says why; summarize, which cannot reach it, still hits"
sed -i 's/pl.col("amount") > 0/pl.col("amount") >= 0/' pipeline/helpers/cleaning.py
CASHER_LOG=debug python run.py 2> "$work/log4"; cat "$work/log4"
expect "clean: miss .*drop_refunds.* in .*cleaning.py" "$work/log4"
expect "summarize: hit" "$work/log4"

step "5. casher deps clean.py --function clean: the definitions the code identity covers"
casher deps clean.py --function clean --python "$python"
TIMEFORMAT='   cold (parses everything): %3Rs'
rm -rf "$CASHER_DIR/analyzer-v1/index"
time casher deps clean.py --function clean --python "$python" --json >/dev/null
TIMEFORMAT='   warm (index, parses nothing): %3Rs'
time casher deps clean.py --function clean --python "$python" --json >/dev/null
casher deps clean.py --function clean --python "$python" --json | python "$here/show_report.py"

step "6. casher run caches any command: a miss, then a hit"
printf 'b\na\nc\n' > words.txt
casher run -v -- sh -c 'sort words.txt > sorted.txt && echo sorted' 2> "$work/log6"; cat "$work/log6"
rm sorted.txt
casher run -v -- sh -c 'sort words.txt > sorted.txt && echo sorted' 2> "$work/log7"; cat "$work/log7"
expect "casher: hit" "$work/log7"
[ "$(cat sorted.txt)" = "$(printf 'a\nb\nc')" ] || { echo "demo failed: sorted.txt not restored" >&2; exit 1; }
echo 'z' >> words.txt
casher run --explain -- sh -c 'sort words.txt > sorted.txt && echo sorted' || echo "(--explain exits 1 on a miss)"

step "casher cache stats"
casher cache stats
echo
echo "demo ok"

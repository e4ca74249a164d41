#!/usr/bin/env bash
# `make demo`: the example pipeline under examples/pipeline, and what
# `casher deps` says its cache keys cover. Run with the project's venv on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$here/pipeline" "$work/pipeline"
cd "$work/pipeline"
export CASHER_DIR="$work/cache"
python="$(command -v python)"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "the pipeline, run plainly"
python run.py

step "casher deps clean.py --function clean"
casher deps clean.py --function clean --python "$python"

digest() { casher deps clean.py --function clean --python "$python" --json | python "$here/show_report.py"
echo
echo "demo ok"

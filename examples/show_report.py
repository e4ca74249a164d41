"""Prints the head of a `casher deps --json` report read from stdin."""

import json
import sys

report = json.load(sys.stdin)
print(json.dumps({k: report[k] for k in ("root", "function", "python", "digest")}, indent=2))
for module in report["modules"][:8]:
    identity = module["distribution"] or (module["hash"] or "")[:12]
    print(f"  {module['name']:32} {module['kind']:10} {identity}")

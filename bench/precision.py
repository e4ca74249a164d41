"""Function-level precision on a real codebase (issue 6): `rich`, copied
into a project as local code. For every top-level function F, which other
top-level functions G would invalidate F's cache entry if edited:

- function level: G's definition is among those F reaches (or G's module is
  counted whole, a named fallback);
- module level: G's module is in F's import closure.

Prints both totals: the false invalidations function level removes.
"""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import local_copy  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "precision"


def main() -> None:
    import rich

    import casher

    project = local_copy(rich, WORK / "project")
    os.environ.setdefault("CASHER_DIR", str(WORK / "cache"))
    functions: dict[str, list[str]] = {}  # module -> top-level function names
    files: dict[str, Path] = {}
    for path in sorted((project / "rich").rglob("*.py")):
        module = ".".join(path.relative_to(project).with_suffix("").parts)
        if module.endswith(".__init__"):
            module = module[: -len(".__init__")]
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:
            continue
        names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if names:
            functions[module] = names
            files[module] = path
    total = sum(len(v) for v in functions.values())
    fn_level = mod_level = 0
    fallbacks = 0
    start = time.perf_counter()
    for module, names in functions.items():
        for name in names:
            report = casher.deps(files[module], name, python=sys.executable)
            reached = {d["name"] for d in report["definitions"]}
            whole = {f["module"] for f in report["fallbacks"]}
            fallbacks += bool(whole)
            closure = {m["name"] for m in report["modules"] if m["kind"] == "local"}
            for other_module, others in functions.items():
                for other in others:
                    if (other_module, other) == (module, name):
                        continue
                    if other_module in closure:
                        mod_level += 1
                    if f"{other_module}.{other}" in reached or other_module in whole:
                        fn_level += 1
    took = time.perf_counter() - start
    print(f"\n## function-level precision on rich ({total} top-level functions in {len(functions)} modules)")
    print(f"edits of another function that invalidate an entry, summed over all functions:")
    print(f"  module level:   {mod_level}")
    print(f"  function level: {fn_level}  ({fn_level / max(mod_level, 1):.1%} of module level)")
    print(f"  functions with a whole-module fallback: {fallbacks} of {total}")
    print(f"  ({took:.1f}s for {total} analyses)")


if __name__ == "__main__":
    main()

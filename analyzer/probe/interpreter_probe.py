# Asked once per interpreter by casher's analyzer: where does this Python
# look for modules, and what is built in? Prints one JSON object.
import ast
import importlib.machinery
import json
import os
import re
import sys
import sysconfig


def editable_mappings(dirs):
    """setuptools editable installs: __editable___*_finder.py holds MAPPING."""
    found = {}
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in sorted(names):
            if not (name.startswith("__editable___") and name.endswith("_finder.py")):
                continue
            try:
                with open(os.path.join(d, name), encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (OSError, SyntaxError, ValueError):
                continue
            for node in tree.body:
                if (
                    isinstance(node, ast.Assign)
                    and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id == "MAPPING"
                ):
                    try:
                        mapping = ast.literal_eval(node.value)
                    except ValueError:
                        continue
                    for key, value in mapping.items():
                        found.setdefault(str(key), str(value))
    return found


def distributions():
    """Top-level import name -> 'name==version' of the distribution providing it."""
    try:
        import importlib.metadata as md
    except ImportError:
        return {}
    out = {}
    for dist in md.distributions():
        try:
            name = dist.metadata["Name"]
            version = dist.version
        except Exception:
            continue
        if not name:
            continue
        ident = f"{name}=={version}"
        tops = set()
        text = dist.read_text("top_level.txt")
        if text:
            tops.update(line.strip() for line in text.splitlines() if line.strip())
        for f in dist.files or ():
            parts = f.parts
            if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or parts[0] == "..":
                continue
            top = parts[0]
            if len(parts) == 1:
                top = top.split(".", 1)[0]
            if top and top != "__pycache__":
                tops.add(top)
        for top in tops:
            out.setdefault(top, ident)
    return out


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements():
    """'name==version' -> the installed distributions it requires, transitively
    ('name==version' each, sorted), from each dist-info's Requires-Dist.
    Requirements only an extra asks for are left out; so are uninstalled ones
    (their markers excluded them, or they are missing)."""
    try:
        import importlib.metadata as md
    except ImportError:
        return {}
    ident = {}
    direct = {}
    for dist in md.distributions():
        try:
            name = dist.metadata["Name"]
            version = dist.version
            requires = dist.requires or ()
        except Exception:
            continue
        if not name:
            continue
        key = _canonical(name)
        if key in ident:
            continue  # the first on sys.path wins, as for imports
        ident[key] = f"{name}=={version}"
        names = []
        for req in requires:
            head, _, marker = req.partition(";")
            if "extra" in marker:
                continue
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", head)
            if m:
                names.append(_canonical(m.group(1)))
        direct[key] = names
    out = {}
    for key, own in ident.items():
        seen = set()
        todo = list(direct.get(key, ()))
        while todo:
            dep = todo.pop()
            if dep in seen or dep == key or dep not in ident:
                continue
            seen.add(dep)
            todo.extend(direct.get(dep, ()))
        if seen:
            out[own] = sorted(ident[d] for d in seen)
    return out


site_dirs = []
for key in ("purelib", "platlib"):
    p = sysconfig.get_paths().get(key)
    if p and p not in site_dirs:
        site_dirs.append(p)
try:
    import site

    for p in site.getsitepackages() + [site.getusersitepackages()]:
        if p not in site_dirs:
            site_dirs.append(p)
except Exception:
    pass

frozen = []
try:
    import _imp

    frozen = sorted(_imp._frozen_module_names())
except Exception:
    pass

stdlib_dirs = []
for key in ("stdlib", "platstdlib"):
    p = sysconfig.get_paths().get(key)
    if p and p not in stdlib_dirs:
        stdlib_dirs.append(os.path.realpath(p))

print(
    json.dumps(
        {
            "executable": sys.executable,
            "version": "%d.%d.%d" % sys.version_info[:3],
            "implementation": sys.implementation.name,
            "sys_path": [p for p in sys.path[1:] if p],
            "stdlib_dirs": stdlib_dirs,
            "site_dirs": [os.path.realpath(p) for p in site_dirs],
            "builtin_modules": sorted(sys.builtin_module_names),
            "builtins": sorted(dir(__import__("builtins"))),
            "frozen_modules": frozen,
            "stdlib_modules": sorted(getattr(sys, "stdlib_module_names", ())),
            "extension_suffixes": list(importlib.machinery.EXTENSION_SUFFIXES),
            "source_suffixes": list(importlib.machinery.SOURCE_SUFFIXES),
            "bytecode_suffixes": list(importlib.machinery.BYTECODE_SUFFIXES),
            "editable": editable_mappings(site_dirs),
            "distributions": distributions(),
            "requires": requirements(),
        }
    )
)

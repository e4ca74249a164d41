"""A command line from a function's signature.

    if __name__ == "__main__":
        import casher.auto_cli
        casher.auto_cli.run(transform)

Each parameter becomes `--name value` (bools become `--name/--no-name`);
`int`, `float`, `str`, `Path`, `list[...]`, `Literal[...]` and `Enum`
annotations are parsed and checked; a pandas or polars DataFrame parameter
takes a path to a `.csv`, `.parquet` or `.arrow` file. The result is printed,
or written with `--output PATH` (format by suffix). A `@cached` function is
cached exactly as when called from Python.
"""

from __future__ import annotations

import argparse
import enum
import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence

_FRAME_SUFFIXES = (".csv", ".parquet", ".arrow", ".feather", ".ipc")


def _frame_kind(annotation: Any) -> str | None:
    name = getattr(annotation, "__name__", "")
    module = getattr(annotation, "__module__", "") or ""
    if name == "DataFrame" and module.startswith("pandas"):
        return "pandas"
    if name == "DataFrame" and module.startswith("polars"):
        return "polars"
    return None


def _read_frame(kind: str, path: str) -> Any:
    suffix = Path(path).suffix.lower()
    if suffix not in _FRAME_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{path}: expected a {', '.join(_FRAME_SUFFIXES)} file")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such file")
    if kind == "polars":
        import polars as pl

        return {".csv": pl.read_csv, ".parquet": pl.read_parquet}.get(suffix, pl.read_ipc)(path)
    import pandas as pd

    return {".csv": pd.read_csv, ".parquet": pd.read_parquet}.get(suffix, pd.read_feather)(path)


def _write_result(result: Any, path: Path) -> None:
    suffix = path.suffix.lower()
    kind = _frame_kind(type(result))
    if kind == "polars":
        {".csv": result.write_csv, ".parquet": result.write_parquet}.get(suffix, result.write_ipc)(path)
    elif kind == "pandas":
        {".csv": lambda p: result.to_csv(p, index=False), ".parquet": result.to_parquet}.get(suffix, result.to_feather)(path)
    elif suffix == ".json":
        path.write_text(json.dumps(result, default=str, indent=2) + "\n")
    else:
        path.write_text(f"{result}\n")


def _unwrap_optional(annotation: Any) -> Any:
    """`X | None` and `Optional[X]` (PEP 604 or typing) parse as X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _add_parameter(parser: argparse.ArgumentParser, param: inspect.Parameter, annotation: Any) -> None:
    flag = "--" + param.name.replace("_", "-")
    required = param.default is inspect.Parameter.empty
    shown = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    kwargs: dict[str, Any] = {"dest": param.name, "help": shown if annotation is not inspect.Parameter.empty else "value"}
    if not required:
        kwargs["default"] = param.default
    else:
        kwargs["required"] = True
        kwargs["default"] = argparse.SUPPRESS  # no "(default: None)" in --help
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        kwargs.pop("required", None)
        kwargs["default"] = False if required else param.default
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    if origin is typing.Literal:
        choices = list(typing.get_args(annotation))
        kwargs["choices"] = choices
        kwargs["type"] = type(choices[0])
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        members = annotation
        kwargs["choices"] = list(members)
        kwargs["type"] = lambda text: members[text] if text in members.__members__ else members(text)
        kwargs["metavar"] = "{" + ",".join(members.__members__) + "}"
    elif origin in (list, Sequence, typing.List) or annotation is list:
        item = (typing.get_args(annotation) or (str,))[0]
        kwargs["nargs"] = "+"
        kwargs["type"] = item if item in (int, float, str, Path) else str
    elif _frame_kind(annotation):
        kind = _frame_kind(annotation)
        kwargs["type"] = lambda text, kind=kind: _read_frame(kind, text)
        kwargs["metavar"] = "PATH"
        kwargs["help"] = f"a {kind} DataFrame read from a {'/'.join(_FRAME_SUFFIXES)} file"
    elif annotation in (int, float, str, Path):
        kwargs["type"] = annotation
    parser.add_argument(flag, **kwargs)


def build_parser(func: Callable[..., Any]) -> argparse.ArgumentParser:
    """The parser `run` uses (exposed for tests and for extension)."""
    from casher._peek import original

    target = original(func)
    parser = argparse.ArgumentParser(
        prog=Path(sys.argv[0]).name if sys.argv and sys.argv[0] else target.__name__,
        description=inspect.getdoc(target),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    try:
        hints = typing.get_type_hints(target)
    except Exception:
        hints = {}
    for param in inspect.signature(target).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        _add_parameter(parser, param, hints.get(param.name, param.annotation))
    parser.add_argument("--output", type=Path, default=None, help="write the result here (format by suffix) instead of printing it")
    return parser


def run(func: Callable[..., Any], argv: Sequence[str] | None = None) -> Any:
    """Parses `argv` (default: the command line), calls `func`, and prints
    or writes the result. Returns the result."""
    parser = build_parser(func)
    namespace = vars(parser.parse_args(argv))
    output = namespace.pop("output")
    result = func(**namespace)
    if output is not None:
        _write_result(result, output)
    elif result is not None:
        print(result)
    return result

"""Log records and warnings a traced call emits. A plain call hands them to
the caller's logging handlers and warnings machinery (`caplog`,
`pytest.warns`, `warnings.catch_warnings(record=True)`,
`logging.captureWarnings`, the caller's "default" once-per-location
registry), not to a stream. So the child does not handle them: it writes
each, framed, into its output where it was emitted (`emitted`), and the
caller takes the frames out and hands them to its own machinery (`Writer`),
live on a miss and in the same order on a hit (the frames are stored with
the output)."""

from __future__ import annotations

import ast
import codecs
import contextlib
import functools
import json
import logging
import os
import struct
import sys
import traceback
import warnings
from typing import Any, Iterable, Iterator

from casher._peek import module_attr, own_dict

log = logging.getLogger("casher")

MARK = b"\x00\x1b[casher-log]"
"""Frames an event in the child's output: the mark and the call's nonce
(`new_mark`), the length of the JSON that follows (8 bytes, little-endian),
the JSON."""


def new_mark() -> bytes:
    """A call's frame mark: with a random nonce, so that output the call
    prints (whatever a file it copies holds) is never taken for a frame."""
    return MARK + os.urandom(8).hex().encode()

_FIELDS = ("name", "levelno", "levelname", "pathname", "filename", "module", "lineno", "funcName", "created", "msecs", "thread", "threadName", "processName", "stack_info")


# -- in the child -------------------------------------------------------

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _literal(value: Any) -> str:
    """`repr(value)` when `ast.literal_eval` gives back an equal value of
    the same type: plain data (numbers, strings, tuples, dicts...) that a
    handler may read or format, sent exactly and read back without running
    anything (a frame comes from the call's output, which may hold what an
    untrusted file held). Else a ValueError."""
    text = repr(value)
    back = ast.literal_eval(text)
    if type(back) is not type(value) or back != value:
        raise ValueError("not plain data")
    return text


def _record(record: logging.LogRecord) -> dict[str, Any]:
    """What handlers read: the fields, the message and its arguments, the
    `extra=` attributes, the exception's class and args (as literals, when
    they are plain data) and its text."""
    data = {f: getattr(record, f, None) for f in _FIELDS}
    try:
        data["message"] = record.getMessage()
    except Exception:  # the caller's handlers say so, as in a plain call
        data["message"] = str(record.msg)
    literals = {}
    for name, value in vars(record).items():
        if name not in _STANDARD or name in ("msg", "args"):
            try:
                literals[name] = _literal(value)
            except Exception:
                pass
    data["literals"] = literals
    if record.exc_info and not record.exc_text:
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    data["exc_text"] = record.exc_text
    exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
    if isinstance(exc, BaseException):
        try:
            data["exception"] = {"class": f"{type(exc).__module__}.{type(exc).__qualname__}", "args": _literal(exc.args)}
        except Exception:
            pass
    return data


_by_file: dict[str, str] = {}


def module_of(filename: str) -> str | None:
    """The name of this process's module loaded from `filename` (what
    `warn` takes from the frame's globals and filters match)."""
    name = _by_file.get(filename)
    if name is not None and module_attr(sys.modules.get(name), "__file__") == filename:
        return name
    for name, module in list(sys.modules.items()):
        if module_attr(module, "__file__") == filename:  # a lazy module stays unloaded
            _by_file[filename] = name
            return name
    return None


def _warning(message: Any, category: type, filename: str, lineno: int) -> dict[str, Any]:
    instance = None
    if isinstance(message, Warning):  # its args and attributes, not only its text
        try:
            instance = {"args": _literal(message.args), "state": _literal(dict(getattr(message, "__dict__", {})))}
        except Exception:
            instance = None
    return {
        "kind": "warning",
        "instance": instance,
        "message": str(message),
        "category": f"{category.__module__}.{category.__qualname__}",
        "filename": filename,
        "lineno": lineno,
        # `warn`'s own fallback for a file that is no module's.
        "module": module_of(filename) or (filename[:-3] if filename.endswith(".py") else filename or "<unknown>"),
    }


def _frame(fd: int, mark: bytes, data: dict[str, Any]) -> None:
    body = json.dumps(data, default=str).encode()
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(fd, mark + struct.pack("<Q", len(body)) + body)


@contextlib.contextmanager
def emitted(log_fd: int = 2, mark: bytes = MARK) -> Iterator[None]:
    """Log records (into `log_fd`, the stream the caller's handlers write
    to) and shown warnings (into stderr) emitted inside the block are framed
    instead of handled. A warning the caller's filters (applied here)
    ignore, or turn into an error, is not shown, so never framed; one the
    call itself records (`catch_warnings` inside it) stays inside it."""
    handlers = logging.Logger.callHandlers
    show = warnings.showwarning

    def send_record(self: logging.Logger, record: logging.LogRecord) -> None:
        try:
            _frame(log_fd, mark, _record(record))
        except Exception:
            handlers(self, record)

    def send_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if file is not None:  # shown to a file the call chose: its own business
            return show(message, category, filename, lineno, file, line)
        try:
            _frame(2, mark, _warning(message, category, filename, lineno))
        except Exception:
            show(message, category, filename, lineno, file, line)

    logging.Logger.callHandlers = send_record  # type: ignore[method-assign]
    warnings.showwarning = send_warning
    try:
        yield
    finally:
        logging.Logger.callHandlers = handlers  # type: ignore[method-assign]
        warnings.showwarning = show


# -- in the caller ------------------------------------------------------

_registries: dict[str, dict] = {}
"""Once-per-location registries of modules the caller has not imported."""


def _class(name: str, base: type) -> Any:
    """The caller's subclass of `base` named `module.qualname` (looked up
    in dicts: nothing is imported or run to find it)."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        found: Any = sys.modules.get(".".join(parts[:split]))
        for part in parts[split:]:
            found = module_attr(found, part)
        if isinstance(found, type) and issubclass(found, base):
            return found
    return None


def _replay_warning(data: dict[str, Any]) -> None:
    """Through the caller's filters, registry and `showwarning`, as if the
    call had warned here."""
    category = _class(data["category"], Warning)
    message: Any = data["message"]
    if category is not None and data.get("instance"):
        # Rebuilt from literals with the caller's own class (see `_literal`).
        from casher._values import rebuild_exception

        try:
            instance = data["instance"]
            message = rebuild_exception(category, ast.literal_eval(instance["args"]), ast.literal_eval(instance["state"]))
        except Exception:
            pass
    if category is None:  # a class only the child has: shown as the child would have
        named = type(data["category"].rsplit(".", 1)[-1], (Warning,), {})
        sys.stderr.write(warnings.formatwarning(data["message"], named, data["filename"], data["lineno"]))
        return
    filename, lineno = data["filename"], data["lineno"]
    # The caller's name for the file first: a function sent by value warns
    # from the caller's `__main__`, which the child has under no name.
    name = module_of(filename) or data["module"]
    attrs = own_dict(sys.modules.get(name))
    if attrs is not None:
        registry = attrs.setdefault("__warningregistry__", {})
    else:
        registry = _registries.setdefault(name, {})
    warnings.warn_explicit(message, category, filename, lineno, module=name, registry=registry)


def _replay_record(data: dict[str, Any]) -> None:
    data = dict(data)
    values = {}
    for name, text in (data.pop("literals", None) or {}).items():
        try:
            values[name] = ast.literal_eval(text)
        except Exception:
            pass
    message = data.pop("message", data.get("msg"))
    if "msg" in values and "args" in values:
        data["msg"], data["args"] = values.pop("msg"), values.pop("args")
    else:  # formatted in the child
        values.pop("msg", None), values.pop("args", None)
        data["msg"], data["args"] = message, None
    data.update(values)  # the `extra=` attributes
    exc = data.pop("exception", None)
    if exc:  # handlers that look at `exc_info` (the text is `exc_text`)
        cls = _class(exc.get("class", ""), BaseException)
        if cls is not None:
            from casher._values import rebuild_exception

            try:
                data["exc_info"] = (cls, rebuild_exception(cls, ast.literal_eval(exc["args"]), {}), None)
            except Exception:
                pass
    record = logging.makeLogRecord(data)
    logger = logging.getLogger(data["name"]) if data["name"] != "root" else logging.getLogger()
    logger.handle(record)


def replay_event(data: dict[str, Any]) -> None:
    if data.get("kind") == "warning":
        _replay_warning(data)
    else:
        _replay_record(data)


@functools.cache
def _child_encoding() -> str:
    """What the child's standard streams (pipes) encode as: what a fresh
    interpreter with this environment picks."""
    if sys.flags.utf8_mode:
        return "utf-8"
    given = os.environ.get("PYTHONIOENCODING", "").split(":")[0]
    if given:
        return given
    import locale

    pick = getattr(locale, "getencoding", None)
    return pick() if pick is not None else locale.getpreferredencoding(False)


def _same_codec(a: str | None, b: str) -> bool:
    try:
        return a is not None and codecs.lookup(a).name == codecs.lookup(b).name
    except LookupError:
        return False


class Writer:
    """Forwards a child's output to sys.stdout/sys.stderr as it arrives
    (so pytest's capsys and notebooks see it), decoding UTF-8 across chunks,
    and hands the framed events in it to the caller's machinery."""

    def __init__(self, mark: bytes | None = None) -> None:
        """`mark`: the call's (`new_mark`); None: output without frames."""
        self.mark = mark
        self.framed = False  # a frame was seen: the mark is stored with the entry
        self._decoders: dict[int, Any] = {}
        self._pending = {1: b"", 2: b""}

    def _write(self, stream: int, data: bytes, final: bool = False) -> None:
        """The bytes as the call wrote them (whatever they hold: invalid
        UTF-8, another encoding) to the stream's binary layer when it
        encodes as the child's stream did; else decoded and written as text
        (a notebook's stream, an `io.StringIO` the caller put in place, a
        stream it reconfigured)."""
        target = sys.stdout if stream == 1 else sys.stderr
        written_as = _child_encoding()
        buffer = getattr(target, "buffer", None)
        if buffer is not None and _same_codec(getattr(target, "encoding", None), written_as):
            if data:
                target.flush()
                buffer.write(data)
                buffer.flush()
            return
        if stream not in self._decoders:
            try:
                self._decoders[stream] = codecs.getincrementaldecoder(written_as)("replace")
            except LookupError:
                self._decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        text = self._decoders[stream].decode(data, final)
        if text:
            target.write(text)
            target.flush()

    def close(self) -> None:
        """Writes what was held back as a possible start of a frame."""
        for stream, data in self._pending.items():
            self._write(stream, data, final=True)
        self._pending = {1: b"", 2: b""}

    def __call__(self, stream: int, data: bytes) -> None:
        mark = self.mark
        if mark is None:
            self._write(stream, data)
            return
        data, self._pending[stream] = self._pending[stream] + data, b""
        while data:
            at = data.find(mark)
            if at < 0:
                keep = next((k for k in range(min(len(mark) - 1, len(data)), 0, -1) if data.endswith(mark[:k])), 0)
                self._write(stream, data[: len(data) - keep])
                self._pending[stream] = data[len(data) - keep :]
                return
            self._write(stream, data[:at])
            self.framed = True
            body = data[at + len(mark) :]
            if len(body) < 8 or len(body) < 8 + struct.unpack_from("<Q", body)[0]:
                self._pending[stream] = data[at:]
                return
            (size,) = struct.unpack_from("<Q", body)
            data = body[8 + size :]
            try:
                event = json.loads(body[8 : 8 + size])
            except Exception as exc:  # a broken frame never breaks the program
                log.debug("an event from the traced call could not be read: %s", exc)
                continue
            try:
                replay_event(event)
            except Exception as exc:
                log.debug("an event from the traced call could not be replayed: %s", exc)


def log_stream() -> int:
    """Where the caller's log records mostly go (1 = stdout, 2 = stderr):
    the child frames them into that stream, so they keep their order with
    what the call prints there."""
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        if stream is sys.stdout or stream is sys.__stdout__:
            return 1
        try:
            if stream is not None and stream.fileno() == 1:
                return 1
        except Exception:
            pass
    return 2


def replay(chunks: Iterable[tuple[int, bytes]], mark: bytes | None) -> None:
    """A stored output, with the frames of the call that made it (`mark`,
    None when it had none)."""
    writer = Writer(mark)
    for stream, data in chunks:
        writer(stream, data)
    writer.close()

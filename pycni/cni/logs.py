"""Logging setup for every pycni process; standard library only (a plugin imports it on each call).

Two formats, both on stderr or a file and never on stdout (a plugin's stdout is its result):
- text lines, for plugins and the node daemon, to the call's `Settings.log_file` at `log_level`,
  and, for one call, where its config says (`call_logging`: multus's and sriov's `logFile` and
  `logLevel`, one mechanism and this one format for both);
- JSON lines, for the device plugin, whose logs go to a cluster log pipeline: log calls pass
  context as `extra={"resource": ..., "pci": ...}` rather than formatting it into the message, and
  each extra becomes a key, so lines can be filtered by field.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycni.cni.files import make_private_dirs

if TYPE_CHECKING:
    from pycni.cni.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s"

#: Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `ts` (UTC, ms), `level`, `logger`, `msg`, the extras, and `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(settings: Settings) -> None:
    """Configure the root logger once per process from the settings' log target (text lines)."""
    level = settings.log_level
    path = settings.log_file
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler()
    _install(
        logging.getLogger(),
        handler,
        logging.Formatter(FORMAT),
        level if level in logging.getLevelNamesMapping() else "WARNING",
    )


@contextmanager
def call_logging(level: int, path: str | None = None) -> Iterator[None]:
    """One call's own logging, as its config asks (a plugin's `logLevel` and `logFile`).

    The `pycni` logger is opened down to `level` for the block, so records below the process's
    own level are made at all. With `path`, everything pycni logs during the block also goes
    to that file at `level`, and the process's handlers keep their own level (`setup_logging`
    sets it on them), so its stderr does not get more; the file's directory is created if
    missing, and a file that cannot be opened costs a warning, never the request. Without
    `path` (sriov-cni's `logLevel` alone: its lines on stderr at that level) the process's own
    handlers are opened down to `level` for the block instead, so each line is written once.
    Only ever widened: a quieter `level` than the process's leaves the process's as it is.
    """
    logger = logging.getLogger("pycni")
    handler = _open_call_file(path, level) if path else None
    if path and handler is None:
        yield
        return
    widened = [] if handler else [h for h in logging.getLogger().handlers if h.level > level]
    levels = [(h, h.level) for h in widened]
    before = logger.level
    for h in widened:
        h.setLevel(level)
    if handler is not None:
        logger.addHandler(handler)
    logger.setLevel(min(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(before)
        for h, old in levels:
            h.setLevel(old)
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()


def _open_call_file(path: str, level: int) -> logging.Handler | None:
    """A handler appending to `path` at `level` in our format; None (and a warning) if it cannot open."""
    try:
        make_private_dirs(Path(path).parent)
        handler = logging.FileHandler(path)
    except OSError as err:
        logging.getLogger("pycni").warning("cannot open logFile %s: %s", path, err.strerror or err)
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(level)
    return handler


def setup_json_logging(level: int = logging.INFO) -> None:
    """Send everything under the `pycni` logger to stderr as JSON lines, and nowhere else.

    Not propagated to the root logger, so a library that configures the root cannot duplicate
    or reformat our lines.
    """
    root = logging.getLogger("pycni")
    _install(root, logging.StreamHandler(sys.stderr), JsonFormatter(), level)
    root.propagate = False


def _install(
    logger: logging.Logger, handler: logging.Handler, formatter: logging.Formatter, level: int | str
) -> None:
    """Make `handler` the logger's only one: setup may run more than once in a process (tests).

    The handler gets the level too, so a call that opens the `pycni` logger wider for a log file
    of its own (`call_logging`) does not widen this one.
    """
    handler.setFormatter(formatter)
    handler.setLevel(level)
    logger.handlers[:] = [handler]
    logger.setLevel(level)

"""Asking a running daemon for its counters (`pycni daemon --status`)."""

from __future__ import annotations

import json
import socket
from typing import Any

from pycni.daemon.protocol import DONE, KIND_STATUS, MAGIC


class NoDaemon(Exception):
    pass


def status(path: str, timeout: float = 2.0) -> dict[str, Any]:
    """The daemon's counters; `NoDaemon` if nothing answers on `path` in time."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(MAGIC + KIND_STATUS + bytes(8))
            answer = sock.makefile("rb").read()
    except OSError as err:
        raise NoDaemon(f"no pycni daemon answers on {path}: {err}") from err
    if answer[:1] != DONE or len(answer) < 9:
        raise NoDaemon(f"the daemon on {path} refused: {answer[9:].decode(errors='replace')}")
    stats: dict[str, Any] = json.loads(answer[9:])
    return stats

"""Logging for plugins: stderr or a file, never stdout (stdout is the result's)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

LOG_FILE_ENV = "PYCNI_LOG_FILE"
LOG_LEVEL_ENV = "PYCNI_LOG_LEVEL"
FORMAT = "%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s"


def setup_logging(env: Mapping[str, str] = os.environ) -> None:
    """Configure the root logger once per process from PYCNI_LOG_FILE / PYCNI_LOG_LEVEL."""
    level = env.get(LOG_LEVEL_ENV, "WARNING").upper()
    path = env.get(LOG_FILE_ENV)
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in logging.getLevelNamesMapping() else "WARNING")

"""Undo helpers for ADD: every step registers its undo on an ExitStack right after it succeeds."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")
log = logging.getLogger("pycni.rollback")


def quietly(func: Callable[P, object]) -> Callable[P, None]:
    """Wrap an undo step so its failure is logged, never raised.

    The error the caller sees must be the one that caused the rollback, not a later one.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception:
            log.warning("undo step %s failed", getattr(func, "__qualname__", func), exc_info=True)

    return run

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


class BestEffort:
    """Teardown that runs every step even when one fails, and reports all failures at the end.

    DEL must leave nothing behind that it could remove: stopping at the first error (as a
    chain of `return err` does) leaks everything after it.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def run(self, what: str, func: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception as err:
            self.errors.append(f"{what}: {getattr(err, 'msg', None) or err}")
            log.warning("%s failed", what, exc_info=True)

    def raise_if_failed(self) -> None:
        if self.errors:
            from pycni.cni.errors import InternalError

            raise InternalError("; ".join(self.errors))

"""Undo helpers for ADD: every step registers its undo on an ExitStack right after it succeeds.

A failed undo or teardown step is logged as one line naming the step and the error, never as a
traceback: the runtime already gets the error that matters, and an operator reading the log
needs what failed, not where in our code it was noticed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ParamSpec

from pycni.cni.errors import CNIError, InternalError, from_code, to_error

P = ParamSpec("P")
log = logging.getLogger("pycni.rollback")


def quietly(func: Callable[P, object]) -> Callable[P, None]:
    """Wrap an undo step so its failure is logged, never raised.

    The error the caller sees must be the one that caused the rollback, not a later one.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception as exc:
            step = getattr(func, "__qualname__", func)
            log.warning("undo step %s failed: %s", step, describe(exc))
            _debug_trace(exc)

    return run


def describe(exc: BaseException) -> str:
    """The spec error an exception stands for, in one line: `[code N] msg`."""
    err = to_error(exc)
    return f"[code {err.code}] {err.msg}"


def _debug_trace(exc: Exception) -> None:
    """Where an unexpected exception (a bug, not a spec error) came from, for debug logs only."""
    if not isinstance(exc, CNIError):
        log.debug("trace of the failure above", exc_info=exc)


class BestEffort:
    """Teardown that runs every step even when one fails, and reports all failures at the end.

    DEL must leave nothing behind that it could remove: stopping at the first error (as a
    chain of `return err` does) leaks everything after it.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.failures: list[CNIError] = []

    def run(self, what: str, func: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception as exc:
            err = to_error(exc)
            self.errors.append(f"{what}: {err.msg}")
            self.failures.append(err)
            log.warning("%s failed: %s", what, describe(exc))
            _debug_trace(exc)

    def raise_if_failed(self) -> None:
        """One error for every failed step; it keeps their spec code when they all share one."""
        if not self.errors:
            return
        codes = {err.code for err in self.failures}
        if len(codes) == 1:
            raise from_code(codes.pop(), "; ".join(self.errors))
        raise InternalError("; ".join(self.errors))

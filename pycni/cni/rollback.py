"""Undo helpers for ADD: every step registers its undo on an ExitStack right after it succeeds."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ParamSpec

from pycni.cni.errors import CNIError, from_code

P = ParamSpec("P")
log = logging.getLogger("pycni.rollback")


def quietly(func: Callable[P, object]) -> Callable[P, None]:
    """Wrap an undo step so its failure is logged, never raised.

    The error the caller sees must be the one that caused the rollback, not a later one.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception as err:
            _log_failure(f"undo step {getattr(func, '__qualname__', func)}", err)

    return run


def _log_failure(what: str, err: Exception) -> None:
    """One WARNING line; an exception that is no CNIError is unexpected, its traceback at DEBUG.

    Without a log file, logs go to stderr, which runtimes copy into their events.
    """
    text = str(getattr(err, "msg", None) or err).replace("\n", "\\n")
    if isinstance(err, CNIError):
        log.warning("%s failed: %s", what, text)
        return
    log.warning("%s failed: unexpected %s: %s", what, type(err).__name__, text)
    log.debug("traceback of the failure of %s", what, exc_info=err)


class BestEffort:
    """Teardown that runs every step even when one fails, and reports all failures at the end.

    DEL must leave nothing behind that it could remove: stopping at the first error (as a
    chain of `return err` does) leaks everything after it.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        #: The spec code of each failure, in order (999 for an exception that is no CNIError).
        self.codes: list[int] = []

    def run(self, what: str, func: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception as err:
            self.errors.append(f"{what}: {getattr(err, 'msg', None) or err}")
            self.codes.append(err.code if isinstance(err, CNIError) else 999)
            _log_failure(what, err)

    def raise_if_failed(self) -> None:
        """All failures as one error: with their common code when they share one, else 999."""
        if self.errors:
            code = self.codes[0] if len(set(self.codes)) == 1 else 999
            raise from_code(code, "; ".join(self.errors))

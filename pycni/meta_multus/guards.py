"""What every verb runs inside: the readiness wait, the per-pod lock, multus's own log file and
the lines that say when each verb started and how it ended."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.cni.errors import CNIError, TryAgainLater
from pycni.cni.logs import call_logging
from pycni.meta_multus.config import LOG_LEVELS
from pycni.net import lock

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.cni.runtime import RuntimeArgs
    from pycni.meta_multus.config import MultusConf

log = logging.getLogger(__name__)

#: The reference waits this long for the readiness indicator file on ADD, STATUS and GC.
READINESS_TIMEOUT = 45.0
READINESS_POLL = 0.25


def wait_ready(conf: MultusConf, error: type[CNIError] = TryAgainLater) -> None:
    """Wait (polling) up to 45 s for `readinessindicatorfile`, as the reference does."""
    if not conf.readiness_indicator_file:
        return
    path = Path(conf.readiness_indicator_file)
    deadline = time.monotonic() + READINESS_TIMEOUT
    while not path.exists():
        if time.monotonic() >= deadline:
            raise error(f"readiness indicator file {path} did not appear within {READINESS_TIMEOUT:.0f}s")
        time.sleep(READINESS_POLL)


@contextmanager
def pod_lock(ctx: Context, container_id: str) -> Iterator[None]:
    """One operation at a time per pod (NPWG §7.3); a crashed holder's lock goes with it.

    Its lock file is removed on release: one per pod would otherwise pile up.
    """
    with lock.transient(ctx.settings.run_dir, "multus", container_id, what=f"multus pod {container_id}"):
        yield


@contextmanager
def logged(verb: str, rt: RuntimeArgs) -> Iterator[None]:
    """One line when the verb starts, one when it ends: how it ended and how long it took."""
    started = time.monotonic()
    pod = f"{rt.arg('K8S_POD_NAMESPACE') or '-'}/{rt.arg('K8S_POD_NAME') or '-'}"
    log.info("%s %s: pod %s, netns %r, interface %s", verb, rt.container_id, pod, rt.netns, rt.ifname)
    try:
        yield
    except BaseException as exc:
        msg = exc.msg if isinstance(exc, CNIError) else f"{type(exc).__name__}: {exc}"
        log.error("%s %s failed after %.0f ms: %s", verb, rt.container_id, _ms(started), msg)
        raise
    log.info("%s %s done in %.0f ms", verb, rt.container_id, _ms(started))


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


@contextmanager
def log_file(conf: MultusConf) -> Iterator[None]:
    """`logFile` at `logLevel` for this call (our own logging still follows PYCNI_LOG_*)."""
    if not conf.log_file:
        yield
        return
    with call_logging(LOG_LEVELS[conf.log_level], conf.log_file):
        yield

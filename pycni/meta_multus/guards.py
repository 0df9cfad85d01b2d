"""What every verb runs inside: the readiness wait, the per-pod lock, multus's own log file."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.cni.errors import CNIError, TryAgainLater
from pycni.meta_multus.config import LOG_LEVELS
from pycni.net import lock

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.meta_multus.config import MultusConf

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
def log_file(conf: MultusConf) -> Iterator[None]:
    """`logFile` at `logLevel` for this call (our own logging still follows PYCNI_LOG_*).

    Its directory is created if missing; a log file that cannot be opened costs a warning, never
    the pod's network.
    """
    if not conf.log_file:
        yield
        return
    path = Path(conf.log_file)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
    except OSError as err:
        logging.getLogger("pycni.multus").warning("cannot open logFile %s: %s", path, err.strerror or err)
        yield
        return
    handler.setLevel(LOG_LEVELS[conf.log_level])
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("pycni")
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()

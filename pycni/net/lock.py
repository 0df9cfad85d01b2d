"""Advisory file locks with a deadline, per shared resource (a bridge, a network, a VF).

The locking itself (`flock`: a deadline, code 11 when it passes, removal of files named after
things that come and go) lives in `pycni.cni.locks`, next to the attachment lock the runner
takes; this module names the locks of the resources plugins share.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pycni.cni.locks import DEFAULT_TIMEOUT, flock, lock_path

__all__ = ["DEFAULT_TIMEOUT", "flock", "resource_lock", "transient"]


def resource_lock(run_dir: Path, kind: str, name: str) -> Path:
    """The lock file for one named resource of the calling thread's netns, e.g. ("bridge", "cni0").

    For resources a node has a bounded number of; `transient` is for one per pod.
    """
    return lock_path(run_dir, kind, name)


@contextmanager
def transient(
    run_dir: Path, kind: str, name: str, timeout: float = DEFAULT_TIMEOUT, what: str = ""
) -> Iterator[None]:
    """Hold the lock of something that comes and goes (a pod); its file goes with the holder."""
    with flock(lock_path(run_dir, kind, name), timeout, what=what, remove=True):
        yield

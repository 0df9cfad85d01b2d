"""Which devices the device plugin handed to containers (`InUse`), so a VF whose netdev moved into
a pod is not reported as broken. Pool membership and health are `pycni.k8s.pools.membership`'s.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from pycni.hw.discovery import Device


class InUse:
    """Devices handed to containers, so a VF whose netdev moved into a pod is not called broken.

    Allocate marks (from gRPC threads); at start the service restores what the kubelet says pods
    hold (its pod-resources API); the reconcile loop checks. A device counts as released once its
    netdev, having left the host, is seen back there (the pod is gone). A restored device's
    netdev names may never have been seen (it was in a pod all along), so for it "left the host"
    is simply "no netdev in the host now".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._allocated: set[str] = set()
        self._moved_out: set[str] = set()
        self._restored: set[str] = set()

    def mark(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._allocated.update(ids)

    def restore(self, ids: Iterable[str]) -> None:
        """Devices the kubelet had given to pods before this process started."""
        with self._lock:
            self._allocated.update(ids)
            self._restored.update(ids)

    def check(self, dev: Device) -> bool:
        with self._lock:
            if dev.address not in self._allocated:
                return False
            known = bool(dev.netdevs) or dev.address in self._restored
            if known and not dev.netdevs_now:
                self._moved_out.add(dev.address)
            elif dev.address in self._moved_out:
                self._moved_out.discard(dev.address)
                self._allocated.discard(dev.address)
                self._restored.discard(dev.address)
            return True

"""Keeps the node's ResourceSlices equal to what the driver sees, from a thread of its own.

The event loop hands over the device list (`publish`, latest wins) and never waits for the API
server, so health reaches kubelet's stream at once even while the server is slow or down. The
thread writes a new pool generation whenever the devices change: it lists this driver's slices on
this node, deletes every one it did not write itself (at start, that is all of them: stale slices
of an earlier run or of anyone else), updates its own in place, creates or deletes to match the
slice count, and only then counts as in sync. A failure is retried with backoff (0.1 s doubling to
30 s); `resync` (kubelet registered us again: a restarted kubelet wipes the node's slices) and a
resync every 10 minutes repair slices someone else deleted or changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pycni.cni.errors import CNIError, TryAgainLater
from pycni.dra.slices import Chunk, chunks, generation_of, slice_body
from pycni.k8s.resourceapi import ResourceApi

log = logging.getLogger(__name__)

FIRST_RETRY = 0.1
MAX_RETRY = 30.0
RESYNC_PERIOD = 600.0


class Publisher:
    """The one writer of this driver's ResourceSlices on this node."""

    def __init__(
        self,
        api: ResourceApi,
        driver: str,
        node: str,
        on_result: Callable[[bool], None] | None = None,
        resync_period: float = RESYNC_PERIOD,
    ) -> None:
        self.api, self.driver, self.node = api, driver, node
        self.on_result = on_result
        self.resync_period = resync_period
        self._cond = threading.Condition()
        self._desired: list[dict[str, Any]] | None = None
        self._wanted = 0  # version of _desired
        self._written = -1  # version last written
        self._force = False
        self._stop = False
        self._thread: threading.Thread | None = None
        # what this process wrote: slice name -> resourceVersion, and the content behind them
        self._mine: dict[str, str] = {}
        self._written_versions: dict[str, str] = {}
        self._content: list[Chunk] | None = None
        self._generation = 0
        self._node_uid: str | None = None

    # -- called by the service ------------------------------------------------------------------
    def publish(self, devices: list[dict[str, Any]]) -> None:
        """The devices the slices should hold now (API JSON, in order)."""
        with self._cond:
            if devices == self._desired:
                return
            self._desired = devices
            self._wanted += 1
            self._cond.notify_all()

    def resync(self) -> None:
        """List and repair even if nothing changed here."""
        with self._cond:
            self._force = True
            self._cond.notify_all()

    @property
    def in_sync(self) -> bool:
        """The latest device list is what the API server holds."""
        with self._cond:
            return self._desired is not None and self._written == self._wanted

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dra-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = FIRST_RETRY
        next_resync = time.monotonic() + self.resync_period
        while True:
            with self._cond:
                self._cond.wait_for(self._due, timeout=max(0.0, next_resync - time.monotonic()))
                if self._stop:
                    return
                if self._desired is None:  # nothing to publish yet: no periodic pass either
                    next_resync = time.monotonic() + self.resync_period
                    continue
                devices, version, self._force = self._desired, self._wanted, False
            try:
                self._sync(devices)
            except Exception as err:  # the thread outlives any one failure
                if isinstance(err, CNIError):
                    log.warning("cannot publish ResourceSlices, will retry", extra={"error": str(err)})
                else:
                    log.exception("publishing ResourceSlices failed, will retry")
                self._report(False)
                with self._cond:
                    self._cond.wait_for(lambda: self._stop, timeout=backoff)
                    self._force = True
                backoff = min(backoff * 2, MAX_RETRY)
                continue
            backoff = FIRST_RETRY
            next_resync = time.monotonic() + self.resync_period
            with self._cond:
                self._written = version
            self._report(True)

    def _due(self) -> bool:
        return self._stop or self._force or (self._desired is not None and self._written != self._wanted)

    def _report(self, ok: bool) -> None:
        if self.on_result is not None:
            self.on_result(ok)

    # -- one pass -------------------------------------------------------------------------------
    def _sync(self, devices: list[dict[str, Any]]) -> None:
        if self._node_uid is None:
            self._node_uid = self.api.node_uid(self.node)
            if self._node_uid is None:
                raise TryAgainLater(f"Node {self.node} does not exist (yet): its slices need it as owner")
        existing = self.api.slices(self.driver, self.node)
        theirs = [s for s in existing if s["metadata"]["name"] not in self._mine]
        for obj in theirs:
            log.info("removing a ResourceSlice we did not write", extra={"slice": obj["metadata"]["name"]})
            self.api.delete_slice(obj["metadata"]["name"])
        current = {s["metadata"]["name"]: s for s in existing if s["metadata"]["name"] in self._mine}
        self._mine = {name: str(obj["metadata"].get("resourceVersion", "")) for name, obj in current.items()}
        wanted = chunks(devices)
        if wanted == self._content and len(current) == len(wanted) and all(map(self._unchanged, current)):
            return
        generation = max([self._generation, *map(generation_of, existing)]) + 1
        self._write(wanted, sorted(current), generation)
        self._content, self._generation = wanted, generation
        log.info(
            "ResourceSlices published",
            extra={"slices": len(wanted), "devices": len(devices), "generation": generation},
        )

    def _unchanged(self, name: str) -> bool:
        """Our slice still holds what we wrote (nobody updated it since: same resourceVersion)."""
        return self._mine.get(name) == self._written_versions.get(name)

    def _write(self, wanted: list[Chunk], names: list[str], generation: int) -> None:
        """Updates our slices in place (a vanished one is created anew), then creates or deletes to
        match the count; `_mine` follows every step, so a failure half-way loses track of nothing."""
        assert self._node_uid is not None
        for index, devices in enumerate(wanted):
            body = slice_body(self.driver, self.node, self._node_uid, generation, len(wanted), devices)
            stored = None
            if index < len(names):
                name = names[index]
                body["metadata"] |= {"name": name, "resourceVersion": self._mine[name]}
                stored = self.api.update_slice(body)
                if stored is None:  # deleted since we listed it
                    self._mine.pop(name)
                    del body["metadata"]["name"], body["metadata"]["resourceVersion"]
            if stored is None:
                stored = self.api.create_slice(body)
            self._mine[stored["metadata"]["name"]] = str(stored["metadata"].get("resourceVersion", ""))
        for name in names[len(wanted) :]:
            self.api.delete_slice(name)
            self._mine.pop(name, None)
        self._written_versions = dict(self._mine)

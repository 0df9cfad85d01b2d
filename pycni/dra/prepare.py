"""NodePrepareResources and NodeUnprepareResources, free of gRPC: claims in, one outcome per claim.

Prepare, per claim: a claim already prepared answers what it answered before (from the checkpoint,
writing its CDI spec again if it is gone, from its devices as they are now: after a reboot a VF's
IOMMU group or driver may differ); otherwise the claim is read from the API server (its UID
must match), this driver's devices in this node's pool are taken from its allocation, and each must
be on the node, healthy, and held by no other prepared claim (an admin-access allocation may share
one). A claim that fails any check gets its own error and leaves nothing behind; the others go on.
The CDI specs are written, then the checkpoint (once per call, not flushed to disk: see
`checkpoint`), then kubelet is answered; if the checkpoint cannot be written, that call's new claims
are undone and fail.

Unprepare needs nothing but the checkpoint: it removes the claim's entry (durably, before kubelet
is answered) and its CDI spec, and a claim it does not know is already unprepared.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycni.dra import cdi, checkpoint
from pycni.dra.checkpoint import PreparedClaim, PreparedDevice
from pycni.dra.claims import AllocatedDevice, ClaimError, ClaimRef, allocated
from pycni.dra.devices import DraDevice

log = logging.getLogger(__name__)

#: (namespace, name) -> the claim's JSON from the API server, or None when it does not exist.
FetchClaim = Callable[[str, str], "dict[str, Any] | None"]
#: The devices on the node now, by device name.
Devices = Callable[[], Mapping[str, DraDevice]]
#: The claims of one call (kubelet sends every claim of a pod at once) are read from the API
#: server this many at a time: each read is a round trip, spent waiting.
FETCH_THREADS = 4


@dataclass(frozen=True)
class Outcome:
    """One claim's answer: its devices, or why it could not be prepared (or unprepared)."""

    devices: tuple[PreparedDevice, ...] = ()
    error: str = ""


class Preparer:
    def __init__(
        self,
        driver: str,
        pool: str,
        cdi_dir: Path,
        checkpoint_path: Path,
        devices: Devices,
        fetch: FetchClaim,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.driver, self.pool, self.cdi_dir = driver, pool, cdi_dir
        self.checkpoint_path = checkpoint_path
        self.devices, self.fetch, self.on_change = devices, fetch, on_change
        self._lock = threading.Lock()
        self._prepared: dict[str, PreparedClaim] = {}
        #: What the event loop and /metrics read without the lock, which a checkpoint flush can
        #: hold for as long as the disk takes: replaced whole after each change (`_publish_view`).
        self._view: tuple[frozenset[str], int] = (frozenset(), 0)

    def _publish_view(self) -> None:
        """Called with the lock held, after `_prepared` changed."""
        devices = frozenset(d.device for claim in self._prepared.values() for d in claim.devices)
        self._view = (devices, len(self._prepared))

    # -- state --------------------------------------------------------------------------------
    def load(self) -> None:
        """Reads the checkpoint and removes the CDI specs it does not know (a crash between the two
        writes, before kubelet got an answer). An unreadable checkpoint is rebuilt from the specs,
        and so is a missing one beside specs (its directory wiped while we were down): dropping
        the specs would free devices that running pods hold. Missing specs are written by
        `restore_specs`, once the devices are known."""
        lost = not self.checkpoint_path.exists()
        claims = checkpoint.load(self.checkpoint_path)
        on_disk = cdi.spec_uids(self.cdi_dir, self.driver)
        if claims is None or (lost and on_disk):
            claims = {uid: self._from_spec(uid) for uid in on_disk}
            checkpoint.save(self.checkpoint_path, claims, durable=True)
        for uid in on_disk - set(claims):
            log.info("removing the CDI spec of a claim never prepared", extra={"claim_uid": uid})
            cdi.remove(cdi.spec_path(self.cdi_dir, self.driver, uid))
        with self._lock:
            self._prepared = claims
            self._publish_view()
        log.info("prepared claims loaded", extra={"claims": len(claims)})

    def restore_specs(self) -> None:
        """Writes the spec of each prepared claim that lost it (a reboot empties /var/run/cdi), from
        its devices as they are now; a claim whose device is gone gets none (its Prepare says why)."""
        with self._lock:
            for uid in list(self._prepared):
                error = self._spec_again(uid)
                if error:
                    log.warning("CDI spec not restored", extra={"claim_uid": uid, "error": error})

    def restore_checkpoint(self) -> None:
        """Writes the checkpoint again, durably, when its file is gone while claims are prepared
        (the plugin directory was removed): under the lock, so no Unprepare is undone. The loop
        asks on every pass: the lock is taken only when the file is missing."""
        if self.checkpoint_path.exists() or not self.count():
            return
        with self._lock:
            if self._prepared and not self.checkpoint_path.exists():
                checkpoint.save(self.checkpoint_path, self._prepared, durable=True)

    def _from_spec(self, uid: str) -> PreparedClaim:
        spec = cdi.read(cdi.spec_path(self.cdi_dir, self.driver, uid)) or {}
        devices = []
        for entry in spec.get("devices", []):
            name = str(entry.get("name", "")).removeprefix(f"{uid}-")
            devices.append(PreparedDevice(requests=[], pool=self.pool, device=name,
                                          cdi_ids=[cdi.device_id(self.driver, uid, name)]))  # fmt: skip
        return PreparedClaim(namespace="", name="", devices=devices, cdi_spec=spec)

    def held(self) -> dict[str, str]:
        """Device name -> the UID of the prepared claim holding it (admin access holds nothing)."""
        with self._lock:
            return {
                d.device: uid
                for uid, claim in self._prepared.items()
                for d in claim.devices
                if not d.admin_access
            }

    def prepared_devices(self) -> frozenset[str]:
        """The devices of prepared claims, as of the last finished change (never waits)."""
        return self._view[0]

    def snapshot(self) -> dict[str, PreparedClaim]:
        with self._lock:
            return dict(self._prepared)

    def count(self) -> int:
        """Prepared claims, as of the last finished change (never waits)."""
        return self._view[1]

    # -- NodePrepareResources -------------------------------------------------------------------
    def prepare(self, refs: list[ClaimRef]) -> dict[str, Outcome]:
        fetched = self._fetch_all(refs)
        out: dict[str, Outcome] = {}
        new: list[str] = []
        with self._lock:
            for ref in refs:
                if ref.uid in out:
                    continue
                if ref.uid in self._prepared:
                    out[ref.uid] = self._again(ref.uid)
                    continue
                found = fetched.get(ref.uid, ClaimError(f"claim {ref} was unprepared meanwhile: try again"))
                try:
                    self._prepared[ref.uid] = self._prepare_one(ref, found)
                except ClaimError as err:
                    log.warning("claim not prepared", extra={"claim": str(ref), "error": str(err)})
                    out[ref.uid] = Outcome(error=str(err))
                    continue
                new.append(ref.uid)
                out[ref.uid] = Outcome(tuple(self._prepared[ref.uid].devices))
            if new and not self._save(new, out):
                new = []
            self._publish_view()
        if new and self.on_change is not None:
            self.on_change()
        return out

    def _fetch_all(self, refs: list[ClaimRef]) -> dict[str, list[AllocatedDevice] | ClaimError]:
        """The claims not prepared yet, read at once (one read in this thread: no hand-off)."""
        with self._lock:
            todo = list({ref.uid: ref for ref in refs if ref.uid not in self._prepared}.values())
        if len(todo) <= 1:
            return {ref.uid: self._fetch(ref) for ref in todo}
        with ThreadPoolExecutor(min(len(todo), FETCH_THREADS), thread_name_prefix="dra-claim") as pool:
            return dict(zip((ref.uid for ref in todo), pool.map(self._fetch, todo), strict=True))

    def _fetch(self, ref: ClaimRef) -> list[AllocatedDevice] | ClaimError:
        """The claim's devices for this driver from the API server (outside the lock: it is slow)."""
        try:
            ref.check()
            return allocated(self.fetch(ref.namespace, ref.name), ref, self.driver, self.pool)
        except ClaimError as err:
            return err
        except Exception as err:  # the API server down or refusing: this claim fails, kubelet retries
            return ClaimError(f"cannot read ResourceClaim {ref.namespace}/{ref.name}: {err}")

    def _again(self, uid: str) -> Outcome:
        """A claim prepared before: the same answer, its CDI spec there again if it went missing."""
        error = self._spec_again(uid)
        return Outcome(error=error) if error else Outcome(tuple(self._prepared[uid].devices))

    def _spec_again(self, uid: str) -> str:
        """Writes a prepared claim's missing CDI spec from its devices as they are now (lock held);
        why it could not, or ""."""
        claim = self._prepared[uid]
        path = cdi.spec_path(self.cdi_dir, self.driver, uid)
        if not claim.cdi_spec or path.exists():
            return ""
        on_node = self.devices()
        gone = [d.device for d in claim.devices if d.device not in on_node]
        if gone:
            return f"claim {uid}: device(s) {gone} are not on this node any more; its CDI spec is gone"
        spec = cdi.build(self.driver, uid, [on_node[d.device] for d in claim.devices])
        try:
            cdi.write(path, spec)
        except OSError as err:
            return f"cannot write the CDI spec of claim {uid}: {err}"
        self._prepared[uid] = claim.model_copy(update={"cdi_spec": spec})
        return ""

    def _prepare_one(self, ref: ClaimRef, found: list[AllocatedDevice] | ClaimError) -> PreparedClaim:
        if isinstance(found, ClaimError):
            raise found
        on_node = self.devices()
        held = {d.device: uid for uid, c in self._prepared.items() for d in c.devices if not d.admin_access}
        devices: dict[str, DraDevice] = {}
        for result in found:
            devices[result.device] = self._usable(ref, result, on_node, held)
            if not result.admin_access:
                held[result.device] = ref.uid
        spec = cdi.build(self.driver, ref.uid, devices.values())
        try:
            cdi.write(cdi.spec_path(self.cdi_dir, self.driver, ref.uid), spec)
        except OSError as err:
            raise ClaimError(f"cannot write the CDI spec of claim {ref}: {err}") from err
        return PreparedClaim(
            namespace=ref.namespace,
            name=ref.name,
            devices=_answer(self.driver, ref.uid, found),
            cdi_spec=spec,
        )

    def _usable(
        self, ref: ClaimRef, result: AllocatedDevice, on_node: Mapping[str, DraDevice], held: dict[str, str]
    ) -> DraDevice:
        dev = on_node.get(result.device)
        if dev is None:
            raise ClaimError(f"device {result.device} of claim {ref} is not on this node (any more)")
        if dev.unhealthy is not None and not result.admin_access:
            raise ClaimError(f"device {result.device} ({dev.address}) is unhealthy: {dev.unhealthy}")
        holder = held.get(result.device)
        if holder not in (None, ref.uid) and not result.admin_access:
            other = self._prepared.get(holder)
            who = f"{other.namespace}/{other.name} ({holder})" if other else holder
            raise ClaimError(f"device {result.device} ({dev.address}) is in use by claim {who}")
        return dev

    def _save(self, new: list[str], out: dict[str, Outcome]) -> bool:
        """Writes the checkpoint; on failure undoes `new` (specs and entries) and fails them."""
        try:
            checkpoint.save(self.checkpoint_path, self._prepared, durable=False)
            return True
        except OSError as err:
            log.error("cannot write the checkpoint", extra={"error": str(err)})
            for uid in new:
                cdi.remove(cdi.spec_path(self.cdi_dir, self.driver, uid))
                del self._prepared[uid]
                out[uid] = Outcome(error=f"cannot write the driver's checkpoint: {err}")
            return False

    # -- NodeUnprepareResources -----------------------------------------------------------------
    def unprepare(self, refs: list[ClaimRef]) -> dict[str, Outcome]:
        out: dict[str, Outcome] = {}
        with self._lock:
            gone = {ref.uid: self._prepared.pop(ref.uid) for ref in refs if ref.uid in self._prepared}
            if gone:
                try:
                    checkpoint.save(self.checkpoint_path, self._prepared, durable=True)
                except OSError as err:
                    self._prepared.update(gone)
                    return {
                        ref.uid: Outcome(error=f"cannot write the driver's checkpoint: {err}") for ref in refs
                    }
            for ref in refs:
                if ref.uid in gone:
                    cdi.remove(cdi.spec_path(self.cdi_dir, self.driver, ref.uid))
                out[ref.uid] = Outcome()
            self._publish_view()
        if gone and self.on_change is not None:
            self.on_change()
        return out


def _answer(driver: str, uid: str, results: list[AllocatedDevice]) -> list[PreparedDevice]:
    """One entry per allocated device, with every request it serves (a device may serve several)."""
    by_device: dict[str, PreparedDevice] = {}
    for r in results:
        before = by_device.get(r.device)
        requests = [*before.requests, r.request_name] if before else [r.request_name]
        by_device[r.device] = PreparedDevice(
            requests=sorted(set(requests)),
            pool=r.pool,
            device=r.device,
            cdi_ids=[cdi.device_id(driver, uid, r.device)],
            admin_access=r.admin_access,
        )
    return list(by_device.values())

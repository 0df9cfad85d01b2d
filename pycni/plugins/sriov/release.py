"""Giving a VF back: its PF-side settings from the snapshot first, then its netdev to the node.

PF side first, as sriov-cni does: some drivers refuse to reset a VF netdev's MAC while trust is
off, so the administrative state goes back before the netdev is touched. The netdev is then found
wherever it is: in the pod (by CNI_IFNAME, alias or MAC), back in the node under its pod-side name
because the pod's netns died first (by the name sysfs now lists at the VF's PCI address, by alias,
or by index and MAC: sriov-cni#126/#349), or already home; and it gets its name, MAC, MTU, alias,
altnames and up/down state back (`pycni.attach.device`).

Used by DEL, GC, ADD's rollback, and ADD reclaiming a VF whose holder's netns is gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pycni.attach.device import giveback
from pycni.cni.errors import TryAgainLater
from pycni.cni.rollback import BestEffort
from pycni.hw import devinfo
from pycni.hw.sysfs import SysFs
from pycni.hw.vf_control import VfControl
from pycni.plugins.sriov.state import Allocation, Stores, VfAttachment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VfCall:
    """What one sriov call works with on the node: its records and claims, the PF side (netlink
    or the state file) and sysfs."""

    stores: Stores
    control: VfControl
    sysfs: SysFs


def release(call: VfCall, rec: VfAttachment, pod_path: str) -> bool:
    """Restore the VF as `rec` recorded it; False when its netdev is nowhere to be found yet.

    Raises (after trying every step) when a step failed, so the caller keeps the record for a retry.
    A VF that no longer exists (its PF gone, SR-IOV disabled) has nothing left to restore.
    """
    if not call.sysfs.exists(rec.pci):
        return True
    steps = BestEffort()
    undo = rec.applied.undo_from(rec.original)
    what = f"restoring the PF-side settings of VF {rec.pci}"
    steps.run(what, call.control.set, rec.pf_netdev, rec.vf_index, undo)
    returned = True
    if rec.mode == "netdev":
        returned = giveback.return_device(pod_path, rec.ifname, rec, call.sysfs.netdevs(rec.pci))
    steps.raise_if_failed()
    return returned


def release_and_forget(call: VfCall, rec: VfAttachment) -> None:
    """Release from the recorded netns and drop the records, whether the netdev was found or not
    (ADD's rollback, and GC, which is authoritative: a device found nowhere is gone)."""
    release(call, rec, rec.netns)
    devinfo.remove(rec.device_info_file)
    call.stores.forget(rec)


def reclaim(call: VfCall, pci: str, holder: Allocation) -> str | None:
    """Take back a VF whose holder's netns is gone: restore it from the holder's record, drop its claim.

    Returns the name its netdev is back under (None for a userspace VF or a claim without record).
    When its netdev has not come back to the node yet (netns teardown is asynchronous) the claim
    stays and ADD is asked to retry: taking the VF now would snapshot it dirty.
    """
    rec = call.stores.attachments.load(*holder.key)
    if rec is None or rec.pci != pci:
        log.warning("dropping the claim of %s on VF %s: it has no record", holder.describe(), pci)
        call.stores.allocations.remove(pci)
        return None
    if not release(call, rec, ""):
        raise TryAgainLater(
            f"VF {rec.pci} was held by {holder.describe()}, whose netns {holder.netns} is gone, "
            f"and its netdev {rec.name} has not come back to the node yet"
        )
    log.info("reclaimed VF %s from %s, whose netns %s is gone", pci, holder.describe(), holder.netns)
    devinfo.remove(rec.device_info_file)
    call.stores.forget(rec)
    return rec.name if rec.mode == "netdev" else None

"""VFs attached by sriov-cni, on a node that moved to pycni with pods running.

We have no record of them, only sriov-cni's cache (`<sriov dir>/<containerID>-<ifname>`) and
PCI marker (so too for VFs our ADD attached whose record `pycni uninstall --node` dropped),
which `pycni.plugins.sriov.reference.to_record` turns into one: DEL restores the VF from it as
sriov-cni would, CHECK judges it, GC releases those of the network that are not valid any more
(sriov-cni never does). Once released, sriov-cni's files go like ours.
"""

from __future__ import annotations

import logging
from typing import Any

from pycni.hw.sysfs import SysFs
from pycni.plugins.sriov import reference
from pycni.plugins.sriov.state import Stores, VfAttachment

log = logging.getLogger(__name__)


def adopted(stores: Stores, sysfs: SysFs, container_id: str, ifname: str, netns: str) -> VfAttachment | None:
    """The attachment sriov-cni cached for (container, interface), as a record of ours."""
    data = stores.sriov_cni.read(container_id, ifname)
    if data is None or _recorded(stores, data, container_id, ifname):
        return None
    marked = stores.sriov_cni.marked_netns(str(data["deviceID"]))
    try:
        return reference.to_record(data, container_id, ifname, netns or marked, sysfs)
    except (ValueError, KeyError, TypeError) as err:
        log.warning("cannot use sriov-cni's cache of %s/%s: %s", container_id, ifname, err)
        return None


def _recorded(stores: Stores, data: dict[str, Any], container_id: str, ifname: str) -> bool:
    """A cache our ADD wrote whose attachment still has our record: that record is the truth.

    Once `pycni uninstall --node` has dropped the record (rolling back, our plugins still
    serving), the cache is sriov-cni's to act on, and ours acts on it the same way.
    """
    ours = data.get(reference.OURS)
    if not isinstance(ours, dict):
        return False
    network = str(ours.get("network", data.get("name", "")))
    return stores.attachments.load(network, container_id, ifname) is not None


def stale(stores: Stores, sysfs: SysFs, network: str, valid: set[str]) -> list[VfAttachment]:
    """sriov-cni's attachments of `network` whose `<containerID>-<ifname>` is not in `valid`."""
    found = []
    for name in stores.sriov_cni.caches():
        if name in valid or "-" not in name:
            continue
        container_id, ifname = name.rsplit("-", 1)
        rec = adopted(stores, sysfs, container_id, ifname, "")
        if rec is not None and rec.network == network:
            found.append(rec)
    return found

"""host-device and sriov: leave each lent device as the reference's DEL expects to find it.

host-device: the reference finds its device in the pod by CNI_IFNAME and takes its home name
from the ifalias, which our ADD sets too; we set it again where a pod changed it, give back
devices whose pod is gone (also those whose DEL is still to come), and drop our records.
sriov: sriov-cni's cache and PCI marker, which our ADD writes beside our record, are written
here for attachments an earlier pycni made (with the config from the runtime's result cache,
for sriov-cni's IPAM release); then our records and claims go. Every attachment whose DEL is
still to come keeps those files, also when its pod's netns is gone: that DEL (sriov-cni's, or
ours, which reads them) resets the VF. A VF DEL'd while its netdev was still in a dying netns
is restored here if it is back, else its record stays (run uninstall again): nothing else
would name it when it returns. The same holds for host-device's devices.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pycni.attach.device import giveback
from pycni.attach.device.record import DeviceState, StateStore
from pycni.cni.settings import Settings
from pycni.libcni.cache import CachedAttachment
from pycni.net import links, netns
from pycni.plugins.sriov import reference
from pycni.plugins.sriov.state import Stores, VfAttachment, netns_alive, vf_locked

log = logging.getLogger(__name__)


#: What uninstall says of a device whose pod died and that the kernel has not given back yet.
NOT_BACK = "not back in the node yet (its netns is still dying): record kept, run uninstall again"


def host_device(settings: Settings, report: list[str]) -> None:
    store = StateStore(settings.state_dir / "host-device")
    _give_back_orphans(store, report)
    for rec in store.all():
        if rec.released:  # the record is all that names the device when it comes back
            report.append(f"host-device: {rec.describe()}: {NOT_BACK}")
            continue
        if netns_alive(rec.netns):
            _mark_alias(rec, report)
        store.remove(rec)
        report.append(f"host-device: {rec.describe()}: record removed")


def _give_back_orphans(store: StateStore, report: list[str]) -> None:
    """Devices whose pod died, back under their node names, before the records naming them go."""
    for rec in store.all():
        if not rec.released and not netns_alive(rec.netns):
            # its pod died: the device is home under its pod name, where the reference's DEL
            # does not look (plugins#1196), and this record, about to go, is what names it
            store.save(rec.model_copy(update={"released": True}))
    orphans = [rec for rec in store.all() if rec.released]
    with netns.rtnl() as host:
        giveback.reclaim_released(store, host)
    left = {rec.key for rec in store.all()}
    for rec in orphans:
        if rec.key not in left:
            report.append(f"host-device: {rec.describe()}: device given back as {rec.name}")


def _mark_alias(rec: DeviceState, report: list[str]) -> None:
    """The device's ifalias in the pod names its node name, as the reference's DEL needs."""
    if rec.mode != "netdev" or not rec.name:
        return
    with netns.rtnl(rec.netns) as pod:
        link = links.find_link(pod, rec.ifname)
        if link is not None and link.alias != rec.name:
            links.set_alias(pod, link, rec.name)
            report.append(f"host-device: {rec.describe()}: ifalias set to {rec.name}")


def sriov(settings: Settings, cached: list[CachedAttachment], report: list[str]) -> None:
    stores = Stores(settings.state_dir, settings.sriov_dir)
    for rec in stores.attachments.all():
        files = stores.sriov_cni
        if rec.released:  # DEL'd, its netdev not back then: restore it now, or keep what names it
            _release_or_keep(settings, stores, rec, report)
            continue
        # its DEL is to come, also when its netns is gone already: sriov-cni's files for it
        if files.read(rec.container_id, rec.ifname) is None:
            config = _config_of(cached, rec.network, rec.container_id, rec.ifname)
            files.write(rec.container_id, rec.ifname, rec.pci, rec.netns, reference.netconf(rec, config))
            report.append(f"sriov: {rec.describe()}: sriov-cni's cache written")
        stores.allocations.remove(rec.pci)
        stores.attachments.remove(rec)
        report.append(f"sriov: {rec.describe()}: record removed")


def _release_or_keep(settings: Settings, stores: Stores, rec: VfAttachment, report: list[str]) -> None:
    """A released VF whose netdev is back is restored (name, PF-side settings) and forgotten, as
    our GC would; one still in a dying netns keeps its record and claim, the only names it has."""
    from pycni.hw.sysfs import SysFs
    from pycni.hw.vf_control import vf_control
    from pycni.plugins.sriov.release import VfCall, release

    with vf_locked(settings.run_dir, rec.pci), netns.rtnl() as host:
        call = VfCall(stores, vf_control(settings, host), SysFs(settings.sysfs_root))
        if not release(call, rec, rec.netns):
            report.append(f"sriov: {rec.describe()}: VF {rec.pci} {NOT_BACK}")
            return
        stores.forget(rec)
    report.append(f"sriov: {rec.describe()}: VF {rec.pci} restored, record removed")


def _config_of(
    cached: list[CachedAttachment], network: str, container_id: str, ifname: str
) -> dict[str, Any]:
    """The sriov plugin's config of an attachment, from the runtime's result cache (its `ipam`
    tells sriov-cni's DEL to release the addresses); a bare one when the cache is gone."""
    for entry in cached:
        if (entry.network, entry.container_id, entry.ifname) != (network, container_id, ifname):
            continue
        try:
            config = json.loads(entry.config)
        except ValueError:
            break
        plugins = config.get("plugins", [config]) if isinstance(config, dict) else []
        for plugin in plugins:
            if isinstance(plugin, dict) and plugin.get("type") == "sriov":
                return {"cniVersion": config.get("cniVersion"), "name": network, **plugin}
    log.warning(
        "no cached config for %s/%s on %s: sriov-cni's DEL will not release its IPs",
        container_id,
        ifname,
        network,
    )
    return {"name": network, "type": "sriov"}


def result_caches(directories: list[Path]) -> list[CachedAttachment]:
    from pycni.libcni.cache import ResultCache

    return [entry for d in directories for entry in ResultCache(d).all_attachments()]

"""Every plugin type pycni provides, by name. Standard library only.

This table is the one place that says which types exist: `pycni install` writes one
executable per entry, in-process delegation and the daemon look types up here.
"""

from __future__ import annotations

from pycni.cni.plugin import PluginRef

PLUGINS: dict[str, PluginRef] = {
    ref.type: ref
    for ref in (
        PluginRef("bridge", "pycni.plugins.bridge.config:BridgeConf", "pycni.plugins.bridge.plugin"),
        PluginRef("vxlan", "pycni.plugins.vxlan.config:VxlanConf", "pycni.plugins.vxlan.plugin"),
        PluginRef("sriov"),
        PluginRef(
            "host-device",
            "pycni.plugins.host_device.config:HostDeviceConf",
            "pycni.plugins.host_device.plugin",
        ),
        PluginRef("host-local", "pycni.ipam.host_local.config:HostLocalConf", "pycni.ipam.host_local.plugin"),
        PluginRef("multus"),
    )
}


def lookup(plugin_type: str) -> PluginRef | None:
    """Our implementation of `plugin_type`, if it is usable in this release."""
    ref = PLUGINS.get(plugin_type)
    return ref if ref is not None and ref.implemented else None

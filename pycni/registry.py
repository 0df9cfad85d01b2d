"""Every plugin type pycni provides, and the wiring of one request to it. Standard library only.

This is the one module that knows every type: `pycni install` writes one executable per entry,
the node daemon preloads and serves them, and `context` gives a call a delegate that runs our
own types in-process. Types are named by import path, so nothing here imports a plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, NoReturn

from pycni.cni.plugin import Context, PluginRef

if TYPE_CHECKING:
    from pycni.cni.settings import Settings

PLUGINS: dict[str, PluginRef] = {
    ref.type: ref
    for ref in (
        PluginRef(
            "bridge",
            "pycni.plugins.bridge.config:BridgeConf",
            "pycni.plugins.bridge.plugin",
            delegates_ipam=True,
            needs_prev_result=True,
            caller_may_delete_pod_link=True,
        ),
        PluginRef(
            "vxlan",
            "pycni.plugins.vxlan.config:VxlanConf",
            "pycni.plugins.vxlan.plugin",
            delegates_ipam=True,
            needs_prev_result=True,
            caller_may_delete_pod_link=True,
        ),
        PluginRef(
            "sriov",
            "pycni.plugins.sriov.config:SriovConf",
            "pycni.plugins.sriov.plugin",
            delegates_ipam=True,
            needs_prev_result=True,
        ),
        PluginRef(
            "host-device",
            "pycni.plugins.host_device.config:HostDeviceConf",
            "pycni.plugins.host_device.plugin",
            delegates_ipam=True,
            needs_prev_result=True,
        ),
        PluginRef("host-local", "pycni.ipam.host_local.config:HostLocalConf", "pycni.ipam.host_local.plugin"),
        PluginRef("multus", "pycni.meta_multus.config:MultusConf", "pycni.meta_multus.plugin"),
    )
}


def lookup(plugin_type: str) -> PluginRef | None:
    """Our implementation of `plugin_type`, if we have one."""
    return PLUGINS.get(plugin_type)


def context(settings: Settings) -> Context:
    """A call's context: our types in-process, any other type exec'd from CNI_PATH."""
    from pycni.libcni.delegate import AutoDelegate

    return Context(delegate=AutoDelegate(lookup, settings), settings=settings)


def run(plugin_type: str, env: Mapping[str, str], stdin: IO[bytes], stdout: IO[str]) -> int:
    """Run one request for `plugin_type` in this process (an executable, or a daemon worker)."""
    from pycni.cni import skel

    return skel.run(PLUGINS[plugin_type], env, stdin, stdout, context)


def main(plugin_type: str) -> NoReturn:
    """Entry point of an executable that runs its request itself: the process's own world."""
    import os
    import sys

    if os.environ.get("CNI_COMMAND") != "VERSION":  # VERSION logs nothing: keep its imports minimal
        from pycni.cni.logs import setup_logging
        from pycni.cni.settings import Settings

        setup_logging(Settings.from_env(os.environ))
    sys.exit(run(plugin_type, os.environ, sys.stdin.buffer, sys.stdout))

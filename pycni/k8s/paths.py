"""Where the kubelet keeps its node-side sockets, as its own defaults name them; standard library only.

The device plugin's and the DRA driver's command lines take these as defaults, so a kubelet started
with another `--root-dir` is served by passing the directories explicitly.
"""

from __future__ import annotations

from pathlib import Path

#: The kubelet's default `--root-dir`.
KUBELET_ROOT = Path("/var/lib/kubelet")
#: Device plugins' sockets live here, beside the kubelet's own Registration socket.
DEVICE_PLUGINS_DIR = KUBELET_ROOT / "device-plugins"
#: The plugin watcher's directory: a socket put here is found without calling Register.
PLUGINS_REGISTRY_DIR = KUBELET_ROOT / "plugins_registry"
#: Kubelet plugins' own directories (a DRA driver's service socket lives in `<driver name>/`).
PLUGINS_DIR = KUBELET_ROOT / "plugins"
#: The file name of the kubelet's device-plugin Registration socket, in `DEVICE_PLUGINS_DIR`.
KUBELET_SOCKET = "kubelet.sock"
#: The PodResources API: which devices the kubelet gave to which pods.
POD_RESOURCES_SOCKET = KUBELET_ROOT / "pod-resources" / "kubelet.sock"

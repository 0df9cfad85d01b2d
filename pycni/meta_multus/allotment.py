"""Which of the pod's devices each attachment gets: the kubelet's allocation, handed out in order.

A NAD naming a `resourceName` needs one device of that resource; the kubelet gave the pod some
(the device plugin's Allocate, read back through the pod-resources API). The n-th attachment of a
resource gets the n-th of the pod's devices of it, sorted, as the reference does.
"""

from __future__ import annotations

from collections.abc import Callable

from pycni.cni.errors import InvalidConfig

#: Resource name → the pod's device IDs (the kubelet's pod-resources API, or a test's table).
DeviceLookup = Callable[[], dict[str, list[str]]]


class DeviceAllotment:
    """The pod's devices per resource, given out one by one to the attachments that need one.

    Looked up lazily and once: a pod whose networks need no device never asks the kubelet.
    `required=False` (a DEL rebuilding a lost plan) lets an attachment whose device cannot be
    found go without one, so its network is still deleted.
    """

    def __init__(self, lookup: DeviceLookup, required: bool = True) -> None:
        self.lookup = lookup
        self.required = required
        self._devices: dict[str, list[str]] | None = None
        self._taken: dict[str, int] = {}

    def next(self, resource: str, network: str) -> str:
        """The next device of `resource` for `network`; "" when none is left and none is required."""
        if self._devices is None:
            self._devices = self.lookup()
        ids = sorted(self._devices.get(resource, []))
        taken = self._taken.get(resource, 0)
        if taken >= len(ids):
            if not self.required:
                return ""
            raise InvalidConfig(
                f"network {network} needs a device of resource {resource!r}, but the kubelet "
                f"allocated {len(ids)} to this pod and {taken} are used by earlier networks: "
                "request one more in the pod's resources"
            )
        self._taken[resource] = taken + 1
        return ids[taken]

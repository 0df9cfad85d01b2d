"""Which of the pod's devices each attachment gets: the kubelet's or the scheduler's allocation,
handed out in order.

A NAD naming a `resourceName` needs one device of it, from one of two sources: a device-plugin
resource (the kubelet gave the pod some in Allocate, read back through the pod-resources API;
sorted, as the reference does) or a request of one of the pod's ResourceClaims (`<claim>/<request>`,
`pycni.meta_multus.claimed`; in the allocation's order). Either way the n-th attachment naming
the resource gets its n-th device, and one too many is an error before anything is attached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pycni.cni.errors import InvalidConfig

if TYPE_CHECKING:
    from pycni.meta_multus.claimed import ClaimedDevice, PodClaims

#: Resource name → the pod's device IDs (the kubelet's pod-resources API, or a test's table).
DeviceLookup = Callable[[], dict[str, list[str]]]


@dataclass(frozen=True)
class Allotted:
    """A device for one attachment: its PCI address, and the claim's device when a claim gave it."""

    device_id: str
    claimed: ClaimedDevice | None = None


class DeviceAllotment:
    """The pod's devices per resource, given out one by one to the attachments that need one.

    Looked up lazily and once: a pod whose networks need no device never asks the kubelet or
    the API server. `required=False` (a DEL rebuilding a lost plan) lets an attachment whose
    device cannot be found go without one, so its network is still deleted.
    """

    def __init__(self, lookup: DeviceLookup, required: bool = True, claims: PodClaims | None = None) -> None:
        self.lookup = lookup
        self.required = required
        self.claims = claims
        self._plugin_devices: dict[str, list[str]] | None = None
        self._pools: dict[str, list[Allotted]] = {}
        self._taken: dict[str, int] = {}

    def next(self, resource: str, network: str) -> Allotted | None:
        """The next device of `resource` for `network`; None when none is left and none is required."""
        pool = self._pool(resource)
        taken = self._taken.get(resource, 0)
        if taken >= len(pool):
            if not self.required:
                return None
            raise InvalidConfig(self._shortage(resource, network, len(pool), taken))
        self._taken[resource] = taken + 1
        return pool[taken]

    def _pool(self, resource: str) -> list[Allotted]:
        if resource not in self._pools:
            if self.claims is not None and self.claims.backs(resource):
                found = [Allotted(pci, claimed) for pci, claimed in self.claims.devices(resource)]
            else:
                if self._plugin_devices is None:
                    self._plugin_devices = self.lookup()
                found = [Allotted(i) for i in sorted(self._plugin_devices.get(resource, []))]
            self._pools[resource] = found
        return self._pools[resource]

    def _shortage(self, resource: str, network: str, count: int, taken: int) -> str:
        if self.claims is not None and self.claims.backs(resource):
            return (
                f"network {network} needs a device of {self.claims.describe(resource)}, but it was "
                f"allocated {count} and {taken} are used by earlier networks: ask for one more "
                "device in that request"
            )
        return (
            f"network {network} needs a device of resource {resource!r}, but the kubelet "
            f"allocated {count} to this pod and {taken} are used by earlier networks: "
            "request one more in the pod's resources"
        )

"""A NAD's device from one of the pod's ResourceClaims (DRA), as multus-cni's DRA integration
reads it: `k8s.v1.cni.cncf.io/resourceName: <claim>/<request>`, where `<claim>` is the name of
an entry of the pod's `spec.resourceClaims`.

The entry names the ResourceClaim, or a template from which the controller made one (its name is
in the pod's `status.resourceClaimStatuses`). The devices allocated to `<request>` (in the
allocation's order) are looked up in their ResourceSlices for the standard attribute
`resource.kubernetes.io/pciBusID`, which becomes the attachment's deviceID, as a device-plugin
VF's. A name that is not one of the pod's claims is left to the device plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from pycni.cni.config import Model
from pycni.cni.errors import CNIError, InvalidConfig, TryAgainLater
from pycni.k8s import claims as dra

if TYPE_CHECKING:
    from collections.abc import Callable

    from pycni.k8s.claims import ClaimSource, DeviceResult, ResourceClaim, ResourceSlice
    from pycni.k8s.objects import Pod


class ClaimedDevice(Model):
    """Which claim's device an attachment got: where its network data is written after ADD."""

    namespace: str
    claim: str = Field(description="The ResourceClaim's name (not the pod's name for it).")
    claim_uid: str = Field("", alias="claimUID")
    request: str
    driver: str
    pool: str
    device: str
    share_id: str | None = Field(None, alias="shareID")

    @property
    def result(self) -> DeviceResult:
        return dra.DeviceResult(
            request=self.request,
            driver=self.driver,
            pool=self.pool,
            device=self.device,
            shareID=self.share_id,
        )


class PodClaims:
    """The pod's claims, read once each when a NAD names one; `source` opens the claim source.

    `quiet` (a DEL rebuilding a lost plan) turns a claim that cannot be read into no devices.
    """

    def __init__(
        self, pod: Pod | None, source: Callable[[], ClaimSource | None], quiet: bool = False
    ) -> None:
        self.pod = pod
        self.source = source
        self.quiet = quiet
        self._claims: dict[str, ResourceClaim] = {}
        self._slices: dict[str, list[ResourceSlice]] = {}

    def backs(self, resource: str) -> bool:
        """`resource` is `<claim>/<request>` and `<claim>` one of the pod's claims."""
        name, sep, request = resource.partition("/")
        return bool(sep and request and self.pod is not None and self.pod.resource_claim(name))

    def describe(self, resource: str) -> str:
        name, _, request = resource.partition("/")
        return f"request {request!r} of the pod's claim {name!r}"

    def devices(self, resource: str) -> list[tuple[str, ClaimedDevice]]:
        """(PCI address, device) of each device allocated to the request, in allocation order."""
        try:
            return self._devices(resource)
        except CNIError:
            if self.quiet:
                return []
            raise

    def _devices(self, resource: str) -> list[tuple[str, ClaimedDevice]]:
        name, _, request = resource.partition("/")
        claim = self._claim(name)
        where = f"ResourceClaim {claim.metadata.namespace}/{claim.metadata.name}"
        if not claim.allocated:
            raise TryAgainLater(f"{where} (the pod's claim {name!r}) is not allocated yet")
        results = claim.results(request)
        if not results:
            raise InvalidConfig(f"{where} has no device allocated to request {request!r}")
        return [(self._pci_address(r, where), _claimed(claim, request, r)) for r in results]

    def _claim(self, name: str) -> ResourceClaim:
        if name in self._claims:
            return self._claims[name]
        assert self.pod is not None  # backs() said so
        entry = self.pod.resource_claim(name)
        assert entry is not None
        object_name = self.pod.claim_object_name(entry)
        if not object_name:
            raise TryAgainLater(
                f"the pod's claim {name!r} (from template {entry.resource_claim_template_name!r}) "
                "has no ResourceClaim yet"
            )
        source = self.source()
        found = source.resource_claim(self.pod.namespace, object_name) if source is not None else None
        if found is None:
            raise TryAgainLater(f"ResourceClaim {self.pod.namespace}/{object_name} not found")
        self._claims[name] = found
        return found

    def _pci_address(self, result: DeviceResult, where: str) -> str:
        if result.driver not in self._slices:
            source = self.source()
            self._slices[result.driver] = source.resource_slices(result.driver) if source else []
        address = dra.pci_address(self._slices[result.driver], result)
        device = f"device {result.device!r} of pool {result.pool!r} (driver {result.driver})"
        if address is None:
            raise TryAgainLater(f"{where}: {device} is in no ResourceSlice of its pool's newest generation")
        if not dra.PCI_ADDRESS.fullmatch(address):
            raise InvalidConfig(
                f"{where}: {device} has no PCI address (attribute {dra.PCI_BUS_ID} "
                f"{'is ' + repr(address) if address else 'is not set'}): only a PCI device can be "
                "handed to a delegate as deviceID"
            )
        return address.lower()


def _claimed(claim: ResourceClaim, request: str, result: DeviceResult) -> ClaimedDevice:
    return ClaimedDevice(
        namespace=claim.metadata.namespace,
        claim=claim.metadata.name,
        claimUID=claim.metadata.uid,
        request=request,
        driver=result.driver,
        pool=result.pool,
        device=result.device,
        shareID=result.share_id,
    )

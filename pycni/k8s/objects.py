"""The Kubernetes objects a meta-plugin reads (Pods, NetworkAttachmentDefinitions), and the one
small interface every source of them offers.

Only the fields the meta-plugin uses are modelled; each source reads objects in the API's own
JSON shape (`metadata.annotations`, `spec.config`), so an API server and a directory of
manifests are read by the same models.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pycni.cni.errors import DecodingFailure

if TYPE_CHECKING:
    from typing import Protocol

#: The pod's selection of extra networks (NPWG v1.3 §4.1).
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
#: The attachments' status, written by the meta-plugin (NPWG v1.3 §4.1.2).
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
#: On a NAD: the device-plugin resource whose devices its attachments use.
RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
#: On a pod: a NAD (in multusNamespace) replacing the cluster network for it.
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
#: "api" for pods from the API server; static pods' mirrors carry "file" or "http".
CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"
NAD_GROUP, NAD_VERSION, NAD_KIND, NAD_PLURAL = (
    "k8s.cni.cncf.io",
    "v1",
    "NetworkAttachmentDefinition",
    "network-attachment-definitions",
)


#: A DNS-1123 label (namespaces; NAD names in a selection), matched whole (`fullmatch`).
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
#: A DNS-1123 subdomain (object names: pods, NADs), matched whole.
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
#: Namespaces are labels (63); object names may be as long as a subdomain (253).
NAMESPACE_MAX, NAME_MAX = 63, 253


def is_namespace(text: str) -> bool:
    return len(text) <= NAMESPACE_MAX and DNS1123_LABEL.fullmatch(text) is not None


def is_dns_subdomain(text: str) -> bool:
    """An object name (pod, NAD) or a resource domain: never a path (`..`, `/`) or a control character."""
    return len(text) <= NAME_MAX and DNS1123_SUBDOMAIN.fullmatch(text) is not None


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


M = TypeVar("M", bound=BaseModel)


class ObjectMeta(_Model):
    name: str
    namespace: str = "default"
    uid: str = ""
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        """Names become file names (a manifest source's network-status) and URL paths."""
        if not is_dns_subdomain(value):
            raise ValueError(f"{value!r} is not a DNS-1123 subdomain (lower-case alphanumerics, '-', '.')")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not is_namespace(value):
            raise ValueError(f"{value!r} is not a DNS-1123 label (lower-case alphanumerics and '-')")
        return value


class _Object(_Model):
    metadata: ObjectMeta

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def name(self) -> str:
        return self.metadata.name


class PodResourceClaim(_Model):
    """`spec.resourceClaims[]`: a claim the pod names, directly or as one made from a template."""

    name: str
    resource_claim_name: str | None = Field(None, alias="resourceClaimName")
    resource_claim_template_name: str | None = Field(None, alias="resourceClaimTemplateName")


class PodResourceClaimStatus(_Model):
    """`status.resourceClaimStatuses[]`: the name of the claim made for a template's entry."""

    name: str
    resource_claim_name: str | None = Field(None, alias="resourceClaimName")


class PodSpec(_Model):
    resource_claims: list[PodResourceClaim] = Field(default_factory=list, alias="resourceClaims")


class PodStatus(_Model):
    resource_claim_statuses: list[PodResourceClaimStatus] = Field(
        default_factory=list, alias="resourceClaimStatuses"
    )


class Pod(_Object):
    spec: PodSpec = Field(default_factory=PodSpec)
    status: PodStatus = Field(default_factory=PodStatus)

    @property
    def uid(self) -> str:
        return self.metadata.uid

    def resource_claim(self, name: str) -> PodResourceClaim | None:
        """The pod's claim entry called `name`, or None when the pod has no such claim."""
        return next((c for c in self.spec.resource_claims if c.name == name), None)

    def claim_object_name(self, entry: PodResourceClaim) -> str:
        """The ResourceClaim's own name: the entry's, or the one the controller made from its
        template and reported in the pod's status ("" until it has)."""
        if entry.resource_claim_name:
            return entry.resource_claim_name
        made = next((s for s in self.status.resource_claim_statuses if s.name == entry.name), None)
        return (made.resource_claim_name or "") if made else ""

    def annotation(self, key: str) -> str:
        return self.metadata.annotations.get(key, "")

    @property
    def is_static(self) -> bool:
        """A static pod's mirror has its own UID, which the runtime's K8S_POD_UID never matches."""
        return self.annotation(CONFIG_SOURCE_ANNOTATION) not in ("", "api")


class NadSpec(_Model):
    config: str | None = None


class NetworkAttachmentDefinition(_Object):
    spec: NadSpec = Field(default_factory=NadSpec)

    @property
    def resource_name(self) -> str:
        return self.metadata.annotations.get(RESOURCE_NAME_ANNOTATION, "")


def parse_pod(obj: Any, where: str) -> Pod:
    return parse_model(Pod, obj, where)


def parse_nad(obj: Any, where: str) -> NetworkAttachmentDefinition:
    return parse_model(NetworkAttachmentDefinition, obj, where)


def parse_model(model: type[M], obj: Any, where: str) -> M:
    """`obj` as `model`; a `DecodingFailure` naming `where` and every field that is wrong."""
    try:
        return model.model_validate(obj)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise DecodingFailure(f"{where}: not a valid {model.__name__}: {problems}") from err


if TYPE_CHECKING:

    class PodSource(Protocol):
        """Where pods and NADs are read and network-status is written: an API server or manifests."""

        #: The network-status record outlives the pod unless DEL removes it (a file beside the
        #: manifests), so the plan must name what was written; an annotation goes with its pod.
        status_kept_apart: bool

        def pod(self, namespace: str, name: str, *, wait: bool) -> Pod | None:
            """The pod, or None when it does not exist; `wait` allows a short wait for a new pod."""
            ...

        def nad(self, namespace: str, name: str) -> NetworkAttachmentDefinition | None:
            """The NAD, or None when it does not exist."""
            ...

        def write_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
            """Record the pod's attachments; a pod that is gone meanwhile is not an error."""
            ...

        def forget_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
            """On DEL: drop the record if it is still the one written (the API keeps annotations)."""
            ...

        def event(self, pod: Pod, reason: str, message: str, *, warning: bool = False) -> None:
            """Tell the pod's watchers (best effort: never raises); `warning`: something went wrong."""
            ...

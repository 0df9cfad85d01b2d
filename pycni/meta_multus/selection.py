"""The pod's network selection annotation (NPWG v1.3 §4.1.2), in both of its forms.

`net-a, other-ns/net-b@eth1` (the comma form, with multus's `@ifname`) or a JSON list of
selection elements. A value containing `[`, `{` or `"` is JSON, as the reference decides.
Each element is validated whole: names are DNS-1123 labels, `interface` a valid ifname,
`ips`/`mac`/`default-route` well-formed addresses; any defect names the element.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from pydantic import Field, ValidationError, field_validator

from pycni.cni.config import Model, describe_validation_error
from pycni.cni.errors import InvalidConfig, InvalidEnvironment
from pycni.cni.runtime import validate_ifname
from pycni.k8s.objects import DNS1123_LABEL, NAME_MAX, NAMESPACE_MAX

_MAC = re.compile(r"[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}")

#: Selection keys passed to the delegate as `runtimeConfig` capability args, by capability name.
CAPABILITY_KEYS = {
    "mac": "mac",
    "ips": "ips",
    "port_mappings": "portMappings",
    "bandwidth": "bandwidth",
    "infiniband_guid": "infinibandGUID",
}


def _label(value: str, what: str, longest: int) -> str:
    """Whole-string match: `$` alone would let a trailing newline through into lookups and paths."""
    if len(value) > longest or not DNS1123_LABEL.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a DNS-1123 label (lower-case alphanumerics and '-')")
    return value


class NetworkSelection(Model):
    """One element: which NAD, on which interface, with which runtime requests."""

    name: str
    namespace: str = ""
    interface: str = ""
    interface_request: str = Field("", alias="interfaceRequest", description="Deprecated alias of interface.")
    mac: str | None = None
    ips: list[str] | None = None
    default_route: list[str] | None = Field(None, alias="default-route")
    cni_args: dict[str, Any] | None = Field(None, alias="cni-args")
    port_mappings: list[dict[str, Any]] | None = Field(None, alias="portMappings")
    bandwidth: dict[str, Any] | None = None
    device_id: str | None = Field(None, alias="deviceID")
    infiniband_guid: str | None = Field(None, alias="infiniband-guid")
    ipam_claim_reference: str | None = Field(
        None, alias="ipam-claim-reference", description="Accepted and ignored, as by the reference."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _label(value, "network name", NAME_MAX)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _label(value, "namespace", NAMESPACE_MAX) if value else value

    @field_validator("interface", "interface_request")
    @classmethod
    def _ifname(cls, value: str) -> str:
        if value:
            try:
                validate_ifname(value)
            except InvalidEnvironment as err:
                raise ValueError(err.msg.replace("CNI_IFNAME", "interface")) from None
        return value

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if value is not None and not _MAC.fullmatch(value):
            raise ValueError(f"{value!r} is not a MAC address such as 'c2:11:22:33:44:55'")
        return value

    @field_validator("ips")
    @classmethod
    def _ips(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            try:
                ipaddress.ip_interface(item)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
        return value

    @field_validator("default_route")
    @classmethod
    def _gateways(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            try:
                ipaddress.ip_address(item)
            except ValueError:
                raise ValueError(f"{item!r} is not a gateway IP address") from None
        return value

    @property
    def requested_ifname(self) -> str:
        return self.interface or self.interface_request

    def capability_args(self) -> dict[str, Any]:
        """The runtime requests of this element, by capability name (unset ones left out)."""
        return {
            cap: getattr(self, key) for key, cap in CAPABILITY_KEYS.items() if getattr(self, key) is not None
        }


def parse(annotation: str, default_namespace: str, what: str) -> list[NetworkSelection]:
    """The elements of an annotation value; `what` names the annotation in errors."""
    text = annotation.strip()
    if not text:
        return []
    raw = _json_elements(text, what) if any(c in text for c in '[{"') else _comma_elements(text, what)
    selections = []
    for index, item in enumerate(raw):
        try:
            selection = NetworkSelection.model_validate(item)
        except ValidationError as err:
            raise InvalidConfig(describe_validation_error(err, f"{what}: element {index}")) from err
        if not selection.namespace:
            selection.namespace = default_namespace
        selections.append(selection)
    return selections


def _json_elements(text: str, what: str) -> list[Any]:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise InvalidConfig(f"{what}: not valid JSON: {err}") from err
    except RecursionError:
        raise InvalidConfig(f"{what}: not valid JSON: nested too deeply") from None
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise InvalidConfig(f"{what}: expected a JSON list of network selection objects")
    return value


def _comma_elements(text: str, what: str) -> list[dict[str, str]]:
    """`[namespace/]name[@interface]`, comma separated."""
    elements = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        ref, _, ifname = item.partition("@")
        namespace, slash, name = ref.rpartition("/")
        if (slash and not namespace) or namespace.count("/") or (ifname == "" and "@" in item):
            raise InvalidConfig(f"{what}: {item!r} is not '[namespace/]name[@interface]'")
        element = {"name": name}
        if namespace:
            element["namespace"] = namespace
        if ifname:
            element["interface"] = ifname
        elements.append(element)
    return elements

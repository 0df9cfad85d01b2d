"""Pydantic models of what a plugin reads on stdin: the network config and its runtime parts.

Plugin config models subclass `NetConf`. Unknown keys are kept (`extra="allow"`) so that a
config passed on to a delegate or down a chain is not stripped; the raw dict is kept too,
because delegates get "the complete upper-plugin config" byte for byte in meaning.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from pycni.cni import version
from pycni.cni.errors import IncompatibleVersion, InternalError, InvalidConfig, InvalidEnvironment
from pycni.cni.runtime import NAME_PATTERN

if TYPE_CHECKING:
    from pycni.cni.types import Result


class Model(BaseModel):
    """Base for every config model: keys by alias or field name, unknown keys kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=False)


class IPAMConf(Model):
    """The `ipam` section; the delegate interprets the rest."""

    type: str = ""


class PortMapping(Model):
    host_port: int = Field(alias="hostPort")
    container_port: int = Field(alias="containerPort")
    protocol: str = "tcp"
    host_ip: str = Field("", alias="hostIP")


class RuntimeConfig(Model):
    """`runtimeConfig`: capability arguments the runtime passes (CONVENTIONS.md)."""

    mac: str | None = None
    ips: list[str] = Field(default_factory=list)
    ip_ranges: list[list[dict[str, Any]]] = Field(default_factory=list, alias="ipRanges")
    device_id: str | None = Field(None, alias="deviceID")
    port_mappings: list[PortMapping] = Field(default_factory=list, alias="portMappings")


class CniArgs(Model):
    ips: list[str] = Field(default_factory=list)
    mac: str | None = None


class Args(Model):
    """`args`: the args convention (`args.cni.ips`, `args.cni.mac`)."""

    cni: CniArgs = Field(default_factory=CniArgs)


class Attachment(Model):
    """One entry of the GC valid-attachments list."""

    container_id: str = Field(alias="containerID")
    ifname: str


class NetConf(Model):
    """Keys every plugin config may carry (spec §Network configuration, §Section 3)."""

    cni_version: str = Field("0.1.0", alias="cniVersion")
    cni_versions: list[str] = Field(default_factory=list, alias="cniVersions")
    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    type: str = ""
    capabilities: dict[str, bool] = Field(default_factory=dict)
    ipam: IPAMConf | None = None
    dns: dict[str, Any] | None = None
    runtime_config: RuntimeConfig = Field(default_factory=RuntimeConfig, alias="runtimeConfig")
    args: Args = Field(default_factory=Args)
    prev_result_raw: dict[str, Any] | None = Field(None, alias="prevResult")
    valid_attachments_raw: list[Attachment] | None = Field(None, alias="cni.dev/valid-attachments")
    attachments_raw: list[Attachment] | None = Field(None, alias="cni.dev/attachments")

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("ipam", mode="before")
    @classmethod
    def _empty_ipam_is_none(cls, value: Any) -> Any:
        """`"ipam": {}` means L2-only, as in the reference plugins."""
        if isinstance(value, dict) and not value.get("type"):
            return None
        return value

    @classmethod
    def load(cls, raw: dict[str, Any], cni_version: str | None = None) -> Self:
        """Validate `raw`; a bad config is code 7 with the offending key named."""
        try:
            conf = cls.model_validate(raw)
        except ValidationError as err:
            raise InvalidConfig(
                describe_validation_error(err, f"invalid {raw.get('type', 'plugin')} config")
            ) from err
        conf._raw = raw
        if cni_version is not None:
            conf.cni_version = cni_version
        return conf

    @property
    def raw(self) -> dict[str, Any]:
        """The config as received, with the negotiated cniVersion."""
        return {**self._raw, "cniVersion": self.cni_version}

    @property
    def has_ipam(self) -> bool:
        return self.ipam is not None and bool(self.ipam.type)

    @cached_property
    def prev_result(self) -> Result | None:
        """`prevResult` upgraded to the newest result model (a result without cniVersion takes ours)."""
        if self.prev_result_raw is None:
            return None
        from pycni.cni.types import parse_result

        return parse_result(self.prev_result_raw, self.cni_version)

    def require_prev_result(self) -> Result:
        """`prevResult`, which CHECK compares the kernel against (the reference's message without it).

        The runner calls it before the CHECK of a type that declares `needs_prev_result`, so the
        verb's own call only narrows the type.
        """
        prev = self.prev_result
        if prev is None:
            raise InternalError("required prevResult missing")
        return prev

    def validate_for_add(self) -> None:
        """What an ADD can know will fail, refused before its first kernel change.

        Both would otherwise fail only after the pod was set up: a 0.1.0/0.2.0 result must hold an
        IP, so an ADD without IPAM at those versions could not print its result (code 1), and
        `dns` is read into the result last (code 7 when it is not a DNS object).
        """
        if not self.has_ipam and not version.has_interfaces(self.cni_version):
            raise IncompatibleVersion(
                f"CNI {self.cni_version} results must carry an IP address: this network has no ipam "
                "(use cniVersion 0.3.0 or later, or configure ipam)"
            )
        if self.dns:
            from pycni.cni.types import DNS

            try:
                DNS.model_validate(self.dns)
            except ValidationError as err:
                raise InvalidConfig(describe_validation_error(err, "invalid dns")) from None

    @property
    def valid_attachments(self) -> list[Attachment] | None:
        """GC's valid list; libcni sends both keys, older ones only `cni.dev/attachments`."""
        if self.valid_attachments_raw is not None:
            return self.valid_attachments_raw
        return self.attachments_raw

    def requested_mac(self, cni_args_mac: str | None = None) -> str | None:
        """MAC by precedence runtimeConfig > args > CNI_ARGS (the reference bridge's order)."""
        return self.runtime_config.mac or self.args.cni.mac or cni_args_mac

    def validate_requested_mac(self, cni_args_mac: str | None = None) -> None:
        """Every MAC asked for (`runtimeConfig`, `args`, CNI_ARGS `MAC`), judged before a veth is made.

        The kernel sees it only when the interface is created; unless it is a unicast Ethernet
        address in the usual notation it is refused first: code 7 from the config, 4 from CNI_ARGS.
        """
        for key, mac in (("runtimeConfig.mac", self.runtime_config.mac), ("args.cni.mac", self.args.cni.mac)):
            if mac is not None and not _unicast_mac(mac):
                raise InvalidConfig(
                    f"{key}: {mac!r} is not a unicast MAC address such as '0a:58:0a:01:02:03'"
                )
        if cni_args_mac is not None and not _unicast_mac(cni_args_mac):
            raise InvalidEnvironment(f"CNI_ARGS MAC: {cni_args_mac!r} is not a unicast MAC address")


def _unicast_mac(mac: str) -> bool:
    return bool(_MAC.fullmatch(mac)) and not int(mac[:2], 16) & 1


_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


#: Names where in a config a problem is, from pydantic's location tuple.
Locate = Callable[[tuple[int | str, ...]], str]


def json_path(loc: tuple[int | str, ...]) -> str:
    """`('ranges', 0, 1, 'subnet')` -> `ranges[0][1].subnet`: the key as a reader finds it."""
    text = ""
    for item in loc:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text


def describe_validation_error(err: ValidationError, what: str, locate: Locate = json_path) -> str:
    """The one formatter of validation errors: every problem, each naming its key.

    `locate` lets a caller name a location better than the bare path (the device plugin adds
    the `resourceName` of the entry).
    """
    problems = [f"{locate(e['loc']) or '(config)'}: {e['msg']}" for e in err.errors()]
    return f"{what}: " + "; ".join(problems)

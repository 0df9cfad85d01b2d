"""The resource-pool configuration: sriov-network-device-plugin's `config.json`, read unchanged.

Every key keeps the reference's spelling through an explicit alias. Keys we accept but cannot
evaluate on this node (`ddpProfiles`, `pKeys`, `vdpaType`, `auxTypes`, `isRdma: true`, and
`deviceType: auxNetDevice`) make their selector match nothing and are reported as warnings by
`unsupported()`, so a pool that relies on them is visibly empty rather than silently too wide.
`load_config` turns any problem into one `ConfigError` naming the entry and the reason.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pycni.cni.config import describe_validation_error, json_path
from pycni.k8s.objects import is_dns_subdomain
from pycni.k8s.pools.ranges import PfRef, parse_pf_ref

RESOURCE_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
DEFAULT_PREFIX = "pycni.io"
log = logging.getLogger(__name__)
UNSUPPORTED_KEYS = ("ddpProfiles", "pKeys", "vdpaType", "auxTypes")


class ConfigError(Exception):
    """The config file cannot be used; the message names the entry and why."""


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)


def _hex_ids(values: list[str]) -> list[str]:
    out = []
    for value in values:
        text = value.strip().lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{1,4}", text):
            raise ValueError(f"{value!r} is not a hex PCI id like 8086")
        out.append(text.rjust(4, "0"))
    return out


class Selectors(_Model):
    """One selector object: every listed key must match (an absent key matches anything)."""

    vendors: list[str] = Field(default_factory=list, alias="vendors")
    devices: list[str] = Field(default_factory=list, alias="devices")
    drivers: list[str] = Field(default_factory=list, alias="drivers")
    pci_addresses: list[str] = Field(default_factory=list, alias="pciAddresses")
    acpi_indexes: list[str] = Field(default_factory=list, alias="acpiIndexes")
    pf_names: list[str] = Field(default_factory=list, alias="pfNames")
    root_devices: list[str] = Field(default_factory=list, alias="rootDevices")
    link_types: list[str] = Field(default_factory=list, alias="linkTypes")
    need_vhost_net: bool = Field(
        False, alias="needVhostNet", description="mount /dev/vhost-net and /dev/net/tun"
    )
    is_rdma: bool = Field(False, alias="isRdma", description="accepted; RDMA devices are not supported here")
    ddp_profiles: list[str] = Field(default_factory=list, alias="ddpProfiles")
    p_keys: list[str] = Field(default_factory=list, alias="pKeys")
    vdpa_type: str | None = Field(None, alias="vdpaType")
    aux_types: list[str] = Field(default_factory=list, alias="auxTypes")

    _check_ids = field_validator("vendors", "devices")(_hex_ids)

    @field_validator("pci_addresses")
    @classmethod
    def _lower_addresses(cls, values: list[str]) -> list[str]:
        return [v.strip().lower() for v in values]

    @field_validator("pf_names", "root_devices")
    @classmethod
    def _valid_ranges(cls, values: list[str]) -> list[str]:
        for value in values:
            parse_pf_ref(value)
        return values

    def pf_refs(self) -> list[PfRef]:
        return [parse_pf_ref(v) for v in self.pf_names]

    def root_refs(self) -> list[PfRef]:
        return [parse_pf_ref(v.lower()) for v in self.root_devices]

    def unsupported(self) -> list[str]:
        """Keys set here that this node cannot evaluate (the selector then matches nothing)."""
        given = self.model_dump(by_alias=True)  # once: matching a device asks for every selector
        keys = [key for key in UNSUPPORTED_KEYS if given.get(key)]
        if self.is_rdma:
            keys.append("isRdma")
        return keys

    def unknown(self) -> list[str]:
        return sorted((self.model_extra or {}).keys())


class ResourceConfig(_Model):
    """One `resourceList` entry: a pool advertised as `<prefix>/<resourceName>`."""

    resource_name: str = Field(alias="resourceName")
    resource_prefix: str | None = Field(None, alias="resourcePrefix")
    device_type: Literal["netDevice", "accelerator", "auxNetDevice"] = Field("netDevice", alias="deviceType")
    exclude_topology: bool = Field(False, alias="excludeTopology")
    selectors: list[Selectors] = Field(default_factory=lambda: [Selectors()], alias="selectors")
    additional_info: dict[str, dict[str, str]] = Field(default_factory=dict, alias="additionalInfo")
    allocation_policy: Literal["pack", "spread"] = Field(
        "pack",
        alias="allocationPolicy",
        description="pycni extension: GetPreferredAllocation packs onto few PFs or spreads across PFs",
    )

    @field_validator("resource_name")
    @classmethod
    def _name(cls, value: str) -> str:
        """Matched whole: the name becomes part of socket and device-info file names."""
        if not RESOURCE_NAME.fullmatch(value):
            raise ValueError(f"{value!r} must match {RESOURCE_NAME.pattern}")
        return value

    @field_validator("resource_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None:
            check_prefix(value)
        return value

    @field_validator("selectors", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return [{}]
        return [value] if isinstance(value, dict) else value

    def unsupported(self) -> list[str]:
        found = [f"selectors[{i}].{key}" for i, sel in enumerate(self.selectors) for key in sel.unsupported()]
        if self.device_type == "auxNetDevice":
            found.append("deviceType=auxNetDevice")
        return found


class PluginConfig(_Model):
    resource_list: list[ResourceConfig] = Field(alias="resourceList")

    @model_validator(mode="after")
    def _non_empty(self) -> PluginConfig:
        if not self.resource_list:
            raise ValueError("resourceList is empty")
        return self


def load_config(path: Path, default_prefix: str = DEFAULT_PREFIX) -> PluginConfig:
    """Reads and validates `path`; duplicate `<prefix>/<resourceName>` pairs are an error."""
    try:
        raw = json.loads(Path(path).read_bytes())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from err
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise ConfigError(f"{path}: not valid JSON: {err}") from err
    except RecursionError:
        raise ConfigError(f"{path}: not valid JSON: nested too deeply") from None
    return parse_config(raw, default_prefix, source=str(path))


def check_prefix(prefix: str) -> None:
    """A resource prefix is a DNS subdomain, as kubelet requires of a resource's domain; it becomes
    part of the plugin's socket file name, so it can never be a path."""
    if not is_dns_subdomain(prefix):
        raise ValueError(f"{prefix!r} is not a DNS-1123 subdomain such as 'pycni.io'")


def parse_config(raw: Any, default_prefix: str = DEFAULT_PREFIX, source: str = "config") -> PluginConfig:
    try:
        check_prefix(default_prefix)
    except ValueError as err:
        raise ConfigError(f"resource prefix: {err}") from None
    try:
        conf = PluginConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, source, partial(_where, raw))) from err
    seen: dict[str, int] = {}
    for index, res in enumerate(conf.resource_list):
        full = f"{res.resource_prefix or default_prefix}/{res.resource_name}"
        if full in seen:
            raise ConfigError(
                f"{source}: resourceList[{index}] ({res.resource_name}): "
                f"resource {full} already defined by resourceList[{seen[full]}]"
            )
        seen[full] = index
    return conf


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a reader would name it, on one printable line.

    `('resourceList', 1, 'selectors', 0, 'pfNames')` -> `resourceList[1] (sriov_b): selectors[0].pfNames`.
    """
    if len(loc) >= 2 and loc[0] == "resourceList" and isinstance(loc[1], int):
        try:
            name = raw["resourceList"][loc[1]].get("resourceName", "?")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = "?"
        rest = json_path(loc[2:])
        return _printable(f"resourceList[{loc[1]}] ({name})" + (f": {rest}" if rest else ""))
    return _printable(json_path(loc) or "config")


def _printable(text: str) -> str:
    """Control characters from the file's keys and names escaped: the message is one log line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


#: A further check of a config (raising ConfigError), e.g. the DRA driver's attribute limits.
ConfigCheck = Callable[["PluginConfig"], None]


def reload_config(
    path: Path, default_prefix: str, running: PluginConfig, check: ConfigCheck | None = None
) -> PluginConfig | None:
    """The config at `path` if it differs from `running` and is valid (`check` may refuse it too,
    raising ConfigError); None otherwise, logged: a bad edit never replaces a working config."""
    try:
        config = load_config(path, default_prefix)
        if check is not None:
            check(config)
    except ConfigError as err:
        log.error("config change rejected, keeping the running config", extra={"error": str(err)})
        return None
    if config == running:
        return None
    log.info("config changed", extra={"pools": [r.resource_name for r in config.resource_list]})
    warn_unsupported(config)
    return config


def warn_unsupported(config: PluginConfig) -> None:
    """Logs every accepted-but-unsupported or unknown key, so nothing is ignored silently."""
    for index, res in enumerate(config.resource_list):
        for key in res.unsupported():
            log.warning(
                "selector not supported on this node; it matches no device",
                extra={"entry": f"resourceList[{index}]", "resource": res.resource_name, "key": key},
            )
        for sel_index, sel in enumerate(res.selectors):
            for key in sel.unknown():
                log.warning(
                    "unknown selector key ignored",
                    extra={"entry": f"resourceList[{index}].selectors[{sel_index}]", "key": key},
                )

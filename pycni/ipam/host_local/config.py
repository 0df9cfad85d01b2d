"""host-local's config: the `ipam` section, its range sets, and the addresses a request asks for.

Every range set is canonicalised here (defaults filled, subnets checked, families and overlaps
validated), so the verbs only ever see valid `RangeSet`s. Sets come, in the reference's order,
from `runtimeConfig.ipRanges` (capability `ipRanges`), the deprecated top-level
`subnet`/`rangeStart`/`rangeEnd`/`gateway`, then `ranges`. Range errors are reported with the
reference's wording ("invalid range set 0: ..."), as invalid config (code 7).
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Self

from pydantic import Field, PrivateAttr, model_validator

from pycni.cni import version
from pycni.cni.config import IPAMConf, Model, NetConf
from pycni.cni.errors import CNIError, InvalidConfig, InvalidEnvironment
from pycni.cni.ipaddr import IPAddress
from pycni.cni.runtime import RuntimeArgs
from pycni.cni.types import Route
from pycni.ipam.host_local.range_set import Range, RangeSet, canonical_range

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


class RangeConf(Model):
    """One range as written in the config."""

    subnet: str = Field(description="CIDR of the network; must be the network address.")
    range_start: str | None = Field(None, alias="rangeStart", description="First address handed out.")
    range_end: str | None = Field(None, alias="rangeEnd", description="Last address handed out.")
    gateway: str | None = Field(None, description="Returned as the gateway, never handed out.")

    def canonical(self) -> Range:
        """The range with defaults filled in; ValueError says what is wrong."""
        subnet = ip_network(self.subnet, strict=True)
        start, end, gateway = (_addr(v) for v in (self.range_start, self.range_end, self.gateway))
        return canonical_range(subnet, start, end, gateway)


class HostLocalIPAM(IPAMConf):
    """The `ipam` section of a host-local network."""

    ranges: list[list[RangeConf]] = Field(
        default_factory=list, description="Range sets; one address is allocated from each."
    )
    subnet: str | None = Field(None, description="Deprecated single range (prepended to ranges).")
    range_start: str | None = Field(None, alias="rangeStart")
    range_end: str | None = Field(None, alias="rangeEnd")
    gateway: str | None = None
    routes: list[Route] = Field(default_factory=list, description="Routes copied into the result.")
    data_dir: str = Field(DEFAULT_DATA_DIR, alias="dataDir", description="Root of the reservation store.")
    resolv_conf: str | None = Field(
        None, alias="resolvConf", description="A resolv.conf whose settings become the result's dns."
    )
    release_on_reboot: bool = Field(
        False,
        alias="releaseOnReboot",
        description="Release every reservation made in an earlier boot (the boot-ID guard).",
    )

    def legacy_range(self) -> list[RangeConf]:
        if not self.subnet:
            return []
        return [
            RangeConf(
                subnet=self.subnet, rangeStart=self.range_start, rangeEnd=self.range_end, gateway=self.gateway
            )
        ]


class HostLocalConf(NetConf):
    """A network config whose `ipam` is host-local; `range_sets` are canonical and checked."""

    ipam: HostLocalIPAM  # required here, optional for other plugins

    _range_sets: list[RangeSet] = PrivateAttr(default_factory=list)

    @property
    def range_sets(self) -> list[RangeSet]:
        return self._range_sets

    @model_validator(mode="after")
    def _canonical_range_sets(self) -> Self:
        """Build and cross-check every range set (raises InvalidConfig, kept as is by pydantic)."""
        written = [[RangeConf.model_validate(r) for r in rs] for rs in self.runtime_config.ip_ranges]
        legacy = self.ipam.legacy_range()
        written += [legacy] if legacy else []
        written += self.ipam.ranges
        if not written:
            raise InvalidConfig("no IP ranges specified")
        self._range_sets = [_range_set(i, rs) for i, rs in enumerate(written)]
        _check_overlaps(self._range_sets)
        _check_per_family(self._range_sets, self.cni_version, self.cni_versions)
        return self


def _addr(value: str | None) -> IPAddress | None:
    return None if value is None else ip_address(value)


def _range_set(index: int, ranges: list[RangeConf]) -> RangeSet:
    try:
        return RangeSet(tuple(r.canonical() for r in ranges))
    except ValueError as err:
        raise InvalidConfig(f"invalid range set {index}: {err}") from err


def _check_overlaps(sets: list[RangeSet]) -> None:
    for i, s1 in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if s1.overlaps(sets[j]):
                raise InvalidConfig(f"range set {i} overlaps with {j}")


def _check_per_family(sets: list[RangeSet], cni_version: str, cni_versions: list[str]) -> None:
    """Results before 0.3.0 carry one ip4 and one ip6: more sets per family cannot be reported."""
    if all(sum(s.version == v for s in sets) <= 1 for v in (4, 6)):
        return
    try:
        negotiated = version.negotiate(cni_version, cni_versions)
    except CNIError:
        return  # the runner reports the version problem itself
    if not version.has_interfaces(negotiated):
        raise InvalidConfig(f"CNI version {negotiated} does not support more than 1 address per family")


def requested_ips(conf: HostLocalConf, rt: RuntimeArgs) -> list[IPAddress]:
    """Addresses the request asks for: CNI_ARGS `IP=`, then `args.cni.ips`, then `runtimeConfig.ips`.

    Each may carry a prefix length ("10.1.2.3/24"), which is ignored: the range decides it.
    """
    texts: list[str] = []
    for key, value in rt.args:
        if key == "IP":
            texts += [t.strip() for t in value.split(",") if t.strip()]
        elif key != "IgnoreUnknown" and not rt.ignore_unknown_args:
            raise InvalidEnvironment(f'CNI_ARGS: unknown args ["{key}={value}"]')
    texts += conf.args.cni.ips + conf.runtime_config.ips
    out: list[IPAddress] = []
    for text in texts:
        try:
            addr = ip_address(text.partition("/")[0])
        except ValueError as err:
            raise InvalidConfig(f"cannot understand ip: {text!r}") from err
        if addr not in out:
            out.append(addr)
    return out

"""What every result version shares: address types, the model base, DNS and the 0.3+ route.

Owns how addresses are read and written ("10.1.2.3/24" strings, as libcni's `types.IPNet`), how
unknown keys ride along (every model keeps them, because chained plugins must pass on what they
do not understand), and how absent values are left out of the JSON (Go's `omitempty`). The
version shapes live in `v020`, `v040` and `v100`; moving between them lives in `convert`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import cache
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    StrictStr,
    ValidationError,
    model_serializer,
)

from pycni.cni import ipaddr
from pycni.cni.errors import DecodingFailure

_INTERFACE_TYPES = (IPv4Interface, IPv6Interface)
_NETWORK_TYPES = (IPv4Network, IPv6Network)


def _cidr_text(value: object) -> str:
    """Demand "addr/len" text: libcni's ParseCIDR rejects a bare address, so do we."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"expected an address in CIDR notation such as '10.1.2.3/24', got {value!r}")
    return value


def _to_interface(value: object) -> object:
    """An address with its prefix length; the host part is kept ("10.1.2.3/24")."""
    if isinstance(value, _INTERFACE_TYPES):
        return value
    return ipaddress.ip_interface(_cidr_text(value))


def _to_network(value: object) -> object:
    """A route destination; host bits are masked, as libcni accepts "10.1.2.3/24" for a dst."""
    if isinstance(value, _NETWORK_TYPES):
        return value
    return ipaddress.ip_network(_cidr_text(value), strict=False)


def _to_address(value: object) -> object:
    """A bare address (gateway, next hop); an `IPv4Interface` is refused, it would print its prefix."""
    if isinstance(value, _INTERFACE_TYPES) or not isinstance(value, str | IPv4Address | IPv6Address):
        raise ValueError(f"expected an IP address such as '10.1.2.1', got {value!r}")
    return value if not isinstance(value, str) else ipaddress.ip_address(value)


#: The `pycni.cni.ipaddr` types, parsed from the result JSON's text forms.
IPInterface = Annotated[ipaddr.IPInterface, BeforeValidator(_to_interface)]
IPNetwork = Annotated[ipaddr.IPNetwork, BeforeValidator(_to_network)]
IPAddress = Annotated[ipaddr.IPAddress, BeforeValidator(_to_address)]


class CNIModel(BaseModel):
    """Base of every result model: aliases for camelCase keys, unknown keys kept verbatim.

    Serialising (`model_dump(mode="json", by_alias=True)`) leaves out known fields that are None
    and the list fields named in `OMIT_WHEN_EMPTY`, like Go's `omitempty`; unknown keys are
    written back exactly as read, even when their value is null. Schemas are built on first use
    (`defer_build`), so a 1.x plugin never pays for the 0.x models.
    """

    model_config = ConfigDict(populate_by_name=True, extra="allow", defer_build=True)

    #: JSON keys of list fields that are left out when empty.
    OMIT_WHEN_EMPTY: ClassVar[frozenset[str]] = frozenset()
    #: JSON keys this object owns beyond its fields (computed on output, dropped on input).
    COMPUTED_KEYS: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        extra = self.model_extra or {}
        kept = {k: v for k, v in data.items() if k in extra or not self._omit(k, v)}
        return {**self._computed(), **kept}

    def _omit(self, key: str, value: Any) -> bool:
        """Whether a known key is left out of the JSON; subclasses add their own rules."""
        return value is None or (key in self.OMIT_WHEN_EMPTY and value == [])

    def _computed(self) -> dict[str, Any]:
        """Keys derived from the fields at output time (0.4.0's ips[].version)."""
        return {}

    @classmethod
    def reserved_keys(cls) -> frozenset[str]:
        """Every key this object gives a meaning to: an unknown key by one of these names is dropped
        when converting into this object, so conversion never turns an unknown key into a field."""
        return _reserved_keys(cls)


@cache
def _reserved_keys(cls: type[CNIModel]) -> frozenset[str]:
    names = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
    return frozenset(names | cls.COMPUTED_KEYS)


def carry(obj: CNIModel, target: type[CNIModel]) -> dict[str, Any]:
    """The unknown keys of `obj` that may travel into a `target` object."""
    reserved = target.reserved_keys()
    return {k: v for k, v in (obj.model_extra or {}).items() if k not in reserved}


class DNS(CNIModel):
    """Resolver settings; identical in every spec version."""

    OMIT_WHEN_EMPTY = frozenset({"nameservers", "search", "options"})

    nameservers: list[StrictStr] = Field(
        default_factory=list, description="Priority-ordered IPv4/IPv6 nameserver addresses."
    )
    domain: StrictStr | None = Field(None, description="Local domain for short hostname lookups.")
    search: list[StrictStr] = Field(default_factory=list, description="Priority-ordered search domains.")
    options: list[StrictStr] = Field(default_factory=list, description="Options passed to the resolver.")

    def is_empty(self) -> bool:
        """True when there is nothing to say (libcni `DNS.IsEmpty`, plus: no unknown keys)."""
        return not (self.nameservers or self.domain or self.search or self.options or self.model_extra)


class Route(CNIModel):
    """A route of a 0.3.0+ result. libcni shares one route type from 0.3.0 to 1.1.0, so the 1.1
    attributes also survive in 0.3.x/0.4.0/1.0.0 output; only 0.1.0/0.2.0 cut routes to dst/gw."""

    dst: IPNetwork = Field(description="Destination in CIDR notation.")
    gw: IPAddress | None = Field(None, description="Next hop; unset means the IP's gateway may be used.")
    mtu: StrictInt | None = Field(None, description="Route MTU (spec 1.1.0).")
    advmss: StrictInt | None = Field(None, description="Advertised MSS (spec 1.1.0).")
    priority: StrictInt | None = Field(None, description="Route metric (spec 1.1.0).")
    table: StrictInt | None = Field(None, description="Routing table id (spec 1.1.0).")
    scope: StrictInt | None = Field(
        None, description="Route scope: 0 global, 253 link, 254 host (spec 1.1.0)."
    )


M = TypeVar("M", bound=CNIModel)


def decode(cls: type[M], raw: Mapping[str, Any], version: str) -> M:
    """Validate one version's result JSON; any defect is a decoding failure (code 6).

    Keys are matched by their JSON names only, so a stray `socket_path` stays an unknown key.
    """
    try:
        return cls.model_validate(raw, by_alias=True, by_name=False)
    except ValidationError as err:
        problems = [_describe(e["loc"], e["msg"]) for e in err.errors(include_url=False)]
        raise DecodingFailure(
            f"failed to decode CNI {version} result: {problems[0]}", "; ".join(problems)
        ) from err


def _describe(loc: tuple[int | str, ...], msg: str) -> str:
    """`ips.0.address: expected an address ...`, without pydantic's "Value error, " prefix."""
    where = ".".join(str(p) for p in loc) or "result"
    return f"{where}: {msg.removeprefix('Value error, ')}"

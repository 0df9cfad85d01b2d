"""Spec versions: which we speak, how they compare, and which verb needs which.

Standard library only: VERSION is answered before anything heavy is imported.
"""

from __future__ import annotations

from pycni.cni.errors import DecodingFailure, IncompatibleVersion

CURRENT = "1.1.0"
SUPPORTED_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

#: The lowest config version in which each verb exists (spec; libcni enforces the same).
MIN_VERSION = {"ADD": "0.1.0", "DEL": "0.1.0", "CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}


def parse(version: str) -> tuple[int, int, int]:
    """Parse `X.Y.Z`; a malformed string is a decoding failure (code 6), as in libcni."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise DecodingFailure(f"invalid version {version!r}: expected X.Y.Z")
    return int(parts[0]), int(parts[1]), int(parts[2])


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def negotiate(cni_version: str | None, cni_versions: list[str] | None = None) -> str:
    """Pick the highest version the config offers that we support (spec 1.1 `cniVersions`)."""
    offered = [cni_version or "0.1.0", *(cni_versions or [])]
    for v in offered:
        parse(v)
    usable = [v for v in offered if v in SUPPORTED_VERSIONS]
    if not usable:
        raise IncompatibleVersion(
            f"incompatible CNI versions: config is {', '.join(offered)}, "
            f"plugin supports {list(SUPPORTED_VERSIONS)}"
        )
    return max(usable, key=parse)


def has_interfaces(version: str) -> bool:
    """Results of 0.3.0 and later list interfaces and many IPs; 0.1/0.2 have ip4/ip6."""
    return at_least(version, "0.3.0")

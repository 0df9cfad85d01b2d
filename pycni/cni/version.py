"""Spec versions: which we speak, how they compare, and which verb needs which.

Standard library only: VERSION is answered before anything heavy is imported.
"""

from __future__ import annotations

import reprlib

from pycni.cni.errors import DecodingFailure, IncompatibleVersion

CURRENT = "1.1.0"
SUPPORTED_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

#: The lowest config version in which each verb exists (spec; libcni enforces the same).
MIN_VERSION = {"ADD": "0.1.0", "DEL": "0.1.0", "CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}


def parse(version: object) -> tuple[int, int, int]:
    """Parse `X.Y.Z`; a malformed string, or no string at all, is a decoding failure (code 6).

    libcni decodes `cniVersion` into a Go string, so a number, bool, list or object there
    fails to decode.
    """
    if not isinstance(version, str):
        raise DecodingFailure(f"invalid version {_brief(version)}: expected a string X.Y.Z")
    parts = version.split(".")
    if len(parts) != 3 or not all(_is_number(p) for p in parts):
        raise DecodingFailure(f"invalid version {_brief(version)}: expected X.Y.Z")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _is_number(part: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes "²" and "٣"), short enough for an int64."""
    return 0 < len(part) <= 18 and part.isascii() and part.isdigit()


def _brief(value: object) -> str:
    """A value for an error message, cut short: hostile input may be megabytes."""
    return reprlib.repr(value)


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def negotiate(cni_version: object, cni_versions: object = None) -> str:
    """Pick the highest version the config offers that we support (spec 1.1 `cniVersions`).

    Takes the values as decoded from JSON: a `cniVersion` that is not a string, or a
    `cniVersions` that is not a list of strings, is a decoding failure (code 6), named.
    """
    if cni_version is not None and not isinstance(cni_version, str):
        raise DecodingFailure(f"cniVersion must be a string such as {CURRENT!r}, got {_brief(cni_version)}")
    if cni_versions is not None and not isinstance(cni_versions, list):
        raise DecodingFailure(f"cniVersions must be a list of version strings, got {_brief(cni_versions)}")
    for i, v in enumerate(cni_versions or []):
        if not isinstance(v, str):
            raise DecodingFailure(f"cniVersions[{i}] must be a version string, got {_brief(v)}")
    offered: list[str] = [cni_version or "0.1.0", *(cni_versions or [])]
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

"""resolv.conf → the result's `dns`, parsed the way the reference does (dns.go)."""

from __future__ import annotations

from pathlib import Path

from pycni.cni.errors import InternalError
from pycni.cni.types import DNS


def parse_resolv_conf(path: str) -> DNS:
    """`nameserver`, `domain`, `search` and `options` lines; comments and other keys ignored."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as err:
        raise InternalError(f"failed to read resolvConf {path}: {err.strerror}") from err
    dns = DNS()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0][0] in "#;":
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver":
            dns.nameservers.append(values[0])
        elif key == "domain":
            dns.domain = values[0]
        elif key == "search":
            dns.search.extend(values)
        elif key == "options":
            dns.options.extend(values)
    return dns

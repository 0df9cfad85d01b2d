"""The runtime's result cache, in libcni's format, so tools that read it keep working.

`<cache_dir>/results/<network>-<container_id>-<ifname>`: written after a whole list ADD
succeeds, read for CHECK and DEL (prevResult), listed for GC, removed after DEL.

Written atomically but not flushed to disk, as libcni writes its own: an entry describes an
attachment, and no attachment outlives a crash of the node; a DEL works without prevResult, and
an entry a crash left unreadable is dropped. (multus's DEL has its plan, flushed, for that case.)
Each flush cost a multus ADD 1 to 5 ms on a virtual disk, twice.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycni.cni import strict_json
from pycni.cni.errors import DecodingFailure
from pycni.cni.files import write_atomic

DEFAULT_CACHE_DIR = Path("/var/lib/cni")


@dataclass(frozen=True)
class CachedAttachment:
    network: str
    container_id: str
    ifname: str
    netns: str
    result: dict[str, Any] | None
    cni_args: list[list[str]]
    capability_args: dict[str, Any]
    #: The network config the attachment was made with, as cached.
    config: bytes = b""


class ResultCache:
    def __init__(self, cache_dir: Path = DEFAULT_CACHE_DIR) -> None:
        self.dir = cache_dir / "results"

    def path(self, network: str, container_id: str, ifname: str) -> Path:
        return self.dir / f"{network}-{container_id}-{ifname}"

    def save(self, entry: CachedAttachment, config: bytes) -> None:
        data = {
            "kind": "cniCacheV1",
            "containerId": entry.container_id,
            "config": base64.b64encode(config).decode(),
            "ifName": entry.ifname,
            "networkName": entry.network,
            "netns": entry.netns,
            "cniArgs": entry.cni_args,
            "capabilityArgs": entry.capability_args,
            "result": entry.result,
        }
        path = self.path(entry.network, entry.container_id, entry.ifname)
        write_atomic(path, json.dumps(data).encode(), 0o600, durable=False, watched=False)

    def load(self, network: str, container_id: str, ifname: str) -> CachedAttachment | None:
        """The cached attachment; an unreadable file is dropped, as libcni does."""
        path = self.path(network, container_id, ifname)
        try:
            return _entry(strict_json.loads(path.read_bytes(), str(path)))
        except FileNotFoundError:
            return None
        except (DecodingFailure, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            return None

    def remove(self, network: str, container_id: str, ifname: str) -> None:
        self.path(network, container_id, ifname).unlink(missing_ok=True)

    def attachments(self, network: str) -> list[CachedAttachment]:
        """Every cached attachment of `network` (libcni GetCachedAttachments)."""
        return [e for e in self._entries(f"{network}-") if e.network == network]

    def all_attachments(self) -> list[CachedAttachment]:
        """Every cached attachment of every network (readable ones)."""
        return self._entries("")

    def _entries(self, prefix: str) -> list[CachedAttachment]:
        if not self.dir.is_dir():
            return []
        found = []
        for path in sorted(self.dir.iterdir()):
            if not path.name.startswith(prefix) or path.name.startswith("."):
                continue
            try:
                found.append(_entry(strict_json.loads(path.read_bytes(), str(path))))
            except (DecodingFailure, ValueError, KeyError, TypeError, OSError):
                continue
        return found


def _entry(data: dict[str, Any]) -> CachedAttachment:
    return CachedAttachment(
        network=data["networkName"],
        container_id=data["containerId"],
        ifname=data["ifName"],
        netns=data.get("netns", ""),
        result=data.get("result"),
        cni_args=data.get("cniArgs") or [],
        capability_args=data.get("capabilityArgs") or {},
        config=base64.b64decode(data.get("config") or ""),
    )

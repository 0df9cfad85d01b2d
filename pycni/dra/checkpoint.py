"""The record of prepared claims: what kubelet was told, and the CDI spec behind it.

Unprepare works from it alone (kubelet sends only the claim's UID, namespace and name, and the API
server may be down or the claim deleted), also after a restart of the driver; a repeated Prepare
answers from it. Written before Prepare answers: atomically (temp file, fsync, rename), mode 0600,
with a SHA-256 of its content. A file that does not parse or whose checksum does not match is
renamed aside (`.corrupt`) and the driver starts without it, rebuilding what it can from its CDI
specs (see `Preparer.load`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pycni.cni.files import make_private_dirs, write_atomic

log = logging.getLogger(__name__)
FORMAT = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PreparedDevice(_Model):
    """One device of a prepared claim, as kubelet was told (and must be told again)."""

    requests: list[str]
    pool: str
    device: str
    cdi_ids: list[str]
    admin_access: bool = False


class PreparedClaim(_Model):
    namespace: str
    name: str
    devices: list[PreparedDevice] = Field(default_factory=list)
    #: The CDI spec as written, to write it again if it is gone (a reboot empties /var/run).
    cdi_spec: dict[str, Any] = Field(default_factory=dict)


class _File(_Model):
    format: int
    checksum: str
    claims: dict[str, PreparedClaim]


def _digest(claims: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save(path: Path, claims: dict[str, PreparedClaim]) -> None:
    body = {uid: claim.model_dump() for uid, claim in claims.items()}
    data = {"format": FORMAT, "checksum": _digest(body), "claims": body}
    make_private_dirs(path.parent)
    write_atomic(path, json.dumps(data, sort_keys=True).encode(), 0o600, durable=True)


def load(path: Path) -> dict[str, PreparedClaim] | None:
    """The prepared claims; {} when there is no checkpoint, None when it was unreadable (moved aside)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        parsed = _File.model_validate_json(raw)
        body = json.loads(raw)["claims"]
        if parsed.format != FORMAT or parsed.checksum != _digest(body):
            raise ValueError("format or checksum mismatch")
    except (ValidationError, ValueError, KeyError, TypeError) as err:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        path.rename(aside)
        log.error("checkpoint unreadable, moved aside", extra={"path": str(aside), "error": str(err)[:200]})
        return None
    return dict(parsed.claims)

"""Counters for `pycni daemon --status`: requests, errors and latency per type and command.

Only the supervisor holds them (workers report each finished request to it), so one
status answer covers every worker.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Latency percentiles are taken over this many most recent requests of each kind.
WINDOW = 1024


@dataclass
class Latency:
    requests: int = 0
    errors: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))

    def record(self, ms: float, failed: bool) -> None:
        self.requests += 1
        self.errors += failed
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)
        self.recent.append(ms)

    def to_json(self) -> dict[str, Any]:
        ordered = sorted(self.recent)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "mean_ms": round(self.total_ms / self.requests, 3) if self.requests else None,
            "p50_ms": percentile(ordered, 0.50),
            "p99_ms": percentile(ordered, 0.99),
            "max_ms": round(self.max_ms, 3),
        }


def percentile(ordered: list[float], q: float) -> float | None:
    """The q-quantile of sorted values (nearest rank), in their unit; None when there are none."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


@dataclass
class Stats:
    """What the supervisor counts; `to_json` is the `--status` answer."""

    started: float = field(default_factory=time.time)
    requests: int = 0
    errors: int = 0
    #: Callers turned away: not root, queue full, shutting down, malformed, unknown type.
    refused: dict[str, int] = field(default_factory=dict)
    #: Taken by a worker but the caller never said GO (it had given up and ran it itself).
    abandoned: int = 0
    #: Workers killed past their hard deadline, or that died.
    worker_restarts: int = 0
    per_kind: dict[str, Latency] = field(default_factory=dict)

    def record(self, plugin_type: str, command: str, code: int, ms: float) -> None:
        self.requests += 1
        self.errors += code != 0
        key = f"{plugin_type} {command}"
        self.per_kind.setdefault(key, Latency()).record(ms, code != 0)

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def to_json(self, **live: int) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "requests": self.requests,
            "errors": self.errors,
            "refused": dict(self.refused),
            "abandoned": self.abandoned,
            "worker_restarts": self.worker_restarts,
            **live,
            "latency": {key: lat.to_json() for key, lat in sorted(self.per_kind.items())},
        }

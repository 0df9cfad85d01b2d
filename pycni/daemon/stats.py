"""Counters for `pycni daemon --status` and /metrics: requests, errors, latency, where time goes.

Only the supervisor holds them (workers report each finished request to it), so one status
answer covers every worker. Per type and command there are two histograms, of the request's
duration in its worker and of its wait in the queue, with fixed buckets (`BUCKETS`): unlike a
summary's quantiles, bucket counts add up across nodes and windows, so an operator can alert
on the p99 over any window. The last `RECENT` requests are kept whole: where each one's time
went (queue, handoff, namespaces, plugin, IPAM, delegates, kernel).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: Latency percentiles in `--status` are taken over this many most recent requests of each kind.
WINDOW = 1024
#: How many of the last requests `--status` shows phase by phase.
RECENT = 32
#: Histogram bucket bounds, in seconds: 1 ms to 10 s (a request past 10 s is in `+Inf` only).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    """Observations per bucket (not cumulative; `cumulative` makes Prometheus's `le` counts)."""

    bounds: tuple[float, ...] = BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """(`le`, count of observations at most that) for every bound, then `+Inf`."""
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


@dataclass(frozen=True)
class Served:
    """One request a worker served, as its report and the supervisor's queue say."""

    plugin_type: str
    command: str
    code: int
    ms: float
    queue_ms: float = 0.0
    handoff_ms: float = 0.0
    #: Milliseconds per phase inside the worker (namespaces, plugin, ipam, delegate, kernel).
    phases: dict[str, float] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    #: The pod link whose deletion (and kernel wait) the caller took over; "" when none.
    left_to_caller: str = ""

    @classmethod
    def of(cls, report: dict[str, Any], queue_ms: float) -> Served:
        return cls(
            report["type"],
            report["command"],
            report["code"],
            report["ms"],
            queue_ms,
            report.get("handoff_ms", 0.0),
            report.get("phases", {}),
            left_to_caller=report.get("left_to_caller", ""),
        )

    def to_json(self) -> dict[str, Any]:
        phases = {f"{name}_ms": round(ms, 3) for name, ms in sorted(self.phases.items())}
        return {
            "at": round(self.at, 3),
            "type": self.plugin_type,
            "command": self.command,
            "code": self.code,
            "total_ms": round(self.queue_ms + self.handoff_ms + self.ms, 3),
            "queue_ms": round(self.queue_ms, 3),
            "handoff_ms": round(self.handoff_ms, 3),
            **phases,
            **({"left_to_caller": self.left_to_caller} if self.left_to_caller else {}),
        }


@dataclass
class Latency:
    requests: int = 0
    errors: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    duration: Histogram = field(default_factory=Histogram)
    queue_wait: Histogram = field(default_factory=Histogram)

    def record(self, ms: float, failed: bool, queue_ms: float = 0.0) -> None:
        self.requests += 1
        self.errors += failed
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)
        self.recent.append(ms)
        self.duration.observe(ms / 1000)
        self.queue_wait.observe(queue_ms / 1000)

    def to_json(self) -> dict[str, Any]:
        ordered = sorted(self.recent)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "mean_ms": round(self.total_ms / self.requests, 3) if self.requests else None,
            "p50_ms": percentile(ordered, 0.50),
            "p99_ms": percentile(ordered, 0.99),
            "max_ms": round(self.max_ms, 3),
            "queue_wait_mean_ms": round(self.queue_wait.total * 1000 / self.requests, 3)
            if self.requests
            else None,
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
    #: The last `RECENT` requests served, oldest first.
    last: deque[Served] = field(default_factory=lambda: deque(maxlen=RECENT))

    def record(self, served: Served) -> None:
        self.requests += 1
        self.errors += served.code != 0
        key = f"{served.plugin_type} {served.command}"
        self.per_kind.setdefault(key, Latency()).record(served.ms, served.code != 0, served.queue_ms)
        self.last.append(served)

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def to_json(self, **live: Any) -> dict[str, Any]:
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
            "recent": [served.to_json() for served in self.last],
        }

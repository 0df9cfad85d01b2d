"""The DRA driver's Prometheus metrics, on a registry of its own (several drivers in one test
process never share numbers):

- `pycni_dra_requests_total{operation}` and `pycni_dra_request_duration_seconds{operation}`: kubelet's
  NodePrepareResources / NodeUnprepareResources calls and how long each took;
- `pycni_dra_claims_total{operation,result}`: claims in those calls, by outcome (`error` counts
  the per-claim errors);
- `pycni_dra_devices{resource,health}`, `pycni_dra_prepared_claims`: read at scrape time from the
  driver's own state, so they never drift from what kubelet and the API server are told;
- `pycni_dra_slice_publications_total{result}`, `pycni_dra_registrations_total{result}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pycni.dra.inventory import Snapshot, report

#: Latency buckets for one gRPC call: a prepare is milliseconds, an API server timeout seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot], prepared: Callable[[], int]) -> None:
        self.snapshot, self.prepared = snapshot, prepared

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot()
        devices = GaugeMetricFamily(
            "pycni_dra_devices",
            "Devices of the node's pool, by resource and health",
            labels=["resource", "health"],
        )
        counts: dict[tuple[str, str], int] = {}
        for entry in report(snap):
            dev = snap.devices.get(entry.device)
            key = (dev.pool.resource if dev else "", entry.health.lower())
            counts[key] = counts.get(key, 0) + 1
        for (resource, health), count in sorted(counts.items()):
            devices.add_metric([resource, health], count)
        yield devices
        yield GaugeMetricFamily(
            "pycni_dra_prepared_claims", "Claims prepared on this node", value=self.prepared()
        )


class DraMetrics:
    def __init__(self, snapshot: Callable[[], Snapshot], prepared: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pycni_dra_requests", "Calls from kubelet", ["operation"], registry=self.registry
        )
        self.duration = Histogram(
            "pycni_dra_request_duration_seconds",
            "Time to answer a call from kubelet",
            ["operation"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.claims = Counter(
            "pycni_dra_claims", "Claims in calls from kubelet, by outcome", ["operation", "result"],
            registry=self.registry,
        )  # fmt: skip
        self.publications = Counter(
            "pycni_dra_slice_publications", "Attempts to bring the ResourceSlices up to date", ["result"],
            registry=self.registry,
        )  # fmt: skip
        self.registrations = Counter(
            "pycni_dra_registrations",
            "Registration results kubelet reported",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(snapshot, prepared))

    def call(self, operation: str, seconds: float, errors: int, claims: int) -> None:
        self.requests.labels(operation).inc()
        self.duration.labels(operation).observe(seconds)
        self.claims.labels(operation, "error").inc(errors)
        self.claims.labels(operation, "success").inc(claims - errors)

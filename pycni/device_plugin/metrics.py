"""The device plugin's Prometheus metrics: devices per pool and health, registrations with
kubelet, devices allocated, reconcile passes.

Device counts are read from the pools at scrape time (a collector), so they can never drift
from what ListAndWatch sends; events are counters. One registry per service, not the process-
global one, so several services (tests) never share numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pycni.k8s.pools.membership import PoolDevice

#: Allocate's latency buckets, in seconds: finer below a millisecond (the goal is 1 ms at p99),
#: then the node daemon's 1 ms .. 10 s.
ALLOCATE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # fmt: skip

#: The devices of every pool, as the service holds them now.
PoolsView = Callable[[], Mapping[str, Sequence[PoolDevice]]]


class _DeviceCollector(Collector):
    def __init__(self, pools: PoolsView) -> None:
        self.pools = pools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "pycni_device_plugin_devices",
            "Devices advertised to kubelet, by pool and health",
            labels=["resource", "health"],
        )
        for resource, devices in sorted(self.pools().items()):
            healthy = sum(d.healthy for d in devices)
            family.add_metric([resource, "healthy"], healthy)
            family.add_metric([resource, "unhealthy"], len(devices) - healthy)
        yield family


class DevicePluginMetrics:
    def __init__(self, pools: PoolsView) -> None:
        self.registry = CollectorRegistry()
        self.registrations = Counter(
            "pycni_device_plugin_registrations",
            "Registrations of a pool with kubelet, by result",
            ["resource", "result"],
            registry=self.registry,
        )
        self.allocated = Counter(
            "pycni_device_plugin_allocated_devices",
            "Devices handed to containers by Allocate",
            ["resource"],
            registry=self.registry,
        )
        self.reconciles = Counter(
            "pycni_device_plugin_reconciles",
            "Passes over the node's devices: a full rescan, or health only after link events",
            ["kind"],
            registry=self.registry,
        )
        self.allocate_duration = Histogram(
            "pycni_device_plugin_allocate_duration_seconds",
            "Time an Allocate call took to answer (or refuse), by pool",
            ["resource"],
            registry=self.registry,
            buckets=ALLOCATE_BUCKETS,
        )
        self.registry.register(_DeviceCollector(pools))

    def allocate_done(self, resource: str, seconds: float) -> None:
        self.allocate_duration.labels(resource).observe(seconds)

    def registration(self, resource: str, ok: bool) -> None:
        self.registrations.labels(resource, "success" if ok else "failure").inc()

"""The node daemon's Prometheus metrics, read from the supervisor's counters at scrape time.

The supervisor already counts every request for `--status` (`stats.Stats`); a collector turns
those numbers into metrics when scraped, so the two can never disagree and a request costs
nothing extra. Duration is a summary: `_count`/`_sum` over all requests, and the 0.5/0.99
quantiles over the most recent ones per kind (the window `--status` reports).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pycni.daemon.stats import Stats, percentile

#: (workers, busy, queued), as the supervisor sees them now.
Live = Callable[[], tuple[int, int, int]]


class _StatsCollector(Collector):
    def __init__(self, stats: Stats, live: Live) -> None:
        self.stats, self.live = stats, live

    def collect(self) -> Iterator[Metric]:
        labels = ["type", "command"]
        requests = CounterMetricFamily(
            "pycni_daemon_requests", "CNI requests served, by type and command", labels=labels
        )
        errors = CounterMetricFamily(
            "pycni_daemon_request_errors", "CNI requests that ended in an error object", labels=labels
        )
        duration = _Summary(
            "pycni_daemon_request_duration_seconds", "Time a worker spent on a request", labels
        )
        for key, lat in sorted(self.stats.per_kind.items()):
            kind = key.split(" ", 1)
            requests.add_metric(kind, lat.requests)
            errors.add_metric(kind, lat.errors)
            duration.add(kind, lat.requests, lat.total_ms / 1000, sorted(lat.recent))
        yield requests
        yield errors
        yield duration
        refused = CounterMetricFamily(
            "pycni_daemon_refused", "Callers turned away, by reason", labels=["reason"]
        )
        for reason, count in sorted(self.stats.refused.items()):
            refused.add_metric([reason], count)
        yield refused
        yield CounterMetricFamily(
            "pycni_daemon_abandoned",
            "Requests a worker took whose caller had already given up",
            value=self.stats.abandoned,
        )
        yield CounterMetricFamily(
            "pycni_daemon_worker_restarts",
            "Workers that died or were killed past their deadline",
            value=self.stats.worker_restarts,
        )
        workers, busy, queued = self.live()
        yield GaugeMetricFamily("pycni_daemon_workers", "Worker processes", value=workers)
        yield GaugeMetricFamily("pycni_daemon_workers_busy", "Workers serving a request now", value=busy)
        yield GaugeMetricFamily("pycni_daemon_queued", "Callers waiting for a worker", value=queued)


class _Summary(Metric):
    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        super().__init__(name, documentation, "summary")
        self.labels = labels

    def add(self, values: list[str], count: int, total: float, recent: list[float]) -> None:
        base = dict(zip(self.labels, values, strict=True))
        for q in (0.5, 0.99):
            ms = percentile(recent, q)
            if ms is not None:
                self.add_sample(self.name, {**base, "quantile": str(q)}, ms / 1000)
        self.add_sample(self.name + "_count", base, count)
        self.add_sample(self.name + "_sum", base, total)


def registry(stats: Stats, live: Live) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(_StatsCollector(stats, live))
    return reg

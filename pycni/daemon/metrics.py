"""The node daemon's Prometheus metrics, read from the supervisor's counters at scrape time.

The supervisor already counts every request for `--status` (`stats.Stats`); a collector turns
those numbers into metrics when scraped, so the two can never disagree and a request costs
nothing extra. Duration and queue wait are histograms per type and command (buckets 1 ms to
10 s, `stats.BUCKETS`): their buckets add up across nodes, so a p99 over any window and any
set of nodes is `histogram_quantile` away. Memory (PSS of the supervisor and the workers) is
read from /proc when scraped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from pycni.daemon import memory
from pycni.daemon.stats import Histogram, Stats

#: (workers, busy, queued), as the supervisor sees them now.
Live = Callable[[], tuple[int, int, int]]
#: The pids of the workers now.
WorkerPids = Callable[[], list[int]]


class _StatsCollector(Collector):
    def __init__(self, stats: Stats, live: Live, worker_pids: WorkerPids) -> None:
        self.stats, self.live, self.worker_pids = stats, live, worker_pids

    def collect(self) -> Iterator[Metric]:
        labels = ["type", "command"]
        requests = CounterMetricFamily(
            "pycni_daemon_requests", "CNI requests served, by type and command", labels=labels
        )
        errors = CounterMetricFamily(
            "pycni_daemon_request_errors", "CNI requests that ended in an error object", labels=labels
        )
        duration = HistogramMetricFamily(
            "pycni_daemon_request_duration_seconds", "Time a worker spent on a request", labels=labels
        )
        queue_wait = HistogramMetricFamily(
            "pycni_daemon_queue_wait_seconds",
            "Time a request waited for a free worker before one took it",
            labels=labels,
        )
        for key, lat in sorted(self.stats.per_kind.items()):
            kind = key.split(" ", 1)
            requests.add_metric(kind, lat.requests)
            errors.add_metric(kind, lat.errors)
            _add_histogram(duration, kind, lat.duration)
            _add_histogram(queue_wait, kind, lat.queue_wait)
        yield requests
        yield errors
        yield duration
        yield queue_wait
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
        yield self._memory()

    def _memory(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "pycni_daemon_memory_pss_bytes",
            "Proportional set size of the daemon's processes (shared pages divided among them)",
            labels=["process"],
        )
        supervisor = memory.usage(os.getpid()).pss_kib
        workers = sum(memory.usage(pid).pss_kib for pid in self.worker_pids())
        family.add_metric(["supervisor"], supervisor * 1024)
        family.add_metric(["workers"], workers * 1024)
        return family


def _add_histogram(family: HistogramMetricFamily, labels: list[str], hist: Histogram) -> None:
    family.add_metric(labels, [(le, float(count)) for le, count in hist.cumulative()], hist.total)


def registry(stats: Stats, live: Live, worker_pids: WorkerPids) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(_StatsCollector(stats, live, worker_pids))
    return reg

"""The device plugin's metrics and probes, scraped over HTTP while it serves a fake node."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pycni.k8s.endpoint import Endpoint
from tests.device_plugin.conftest import PREFIX, Running, set_link
from tests.device_plugin.kubelet import wait_for
from tests.device_plugin.test_serving import allocate

A = f"{PREFIX}/sriov_a"


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = scrape(port)[1]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(port: int, name: str, **labels: str) -> float:
    return samples(port).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def endpoint_of() -> Iterator[Callable[[Running], Endpoint]]:
    made: list[Endpoint] = []

    def serve(run: Running) -> Endpoint:
        svc = run.service
        made.append(Endpoint("127.0.0.1:0", svc.metrics.registry, svc.healthy, svc.ready))
        made[-1].serve_in_thread()
        return made[-1]

    yield serve
    for endpoint in made:
        endpoint.close()


def test_devices_registrations_and_allocations_are_counted(
    start_service: Callable[..., Running], endpoint_of: Callable[[Running], Endpoint]
) -> None:
    run = start_service()
    port = endpoint_of(run).port
    wait_for(lambda: scrape(port, "/readyz")[0] == 200, what="every pool registered")
    assert scrape(port, "/healthz") == (200, "ok\n")
    assert value(port, "pycni_device_plugin_devices", resource=A, health="healthy") == 4
    assert value(port, "pycni_device_plugin_devices", resource=A, health="unhealthy") == 0
    assert value(port, "pycni_device_plugin_registrations_total", resource=A, result="success") == 1
    allocate(run, "sriov_a", ["0000:3b:02.1", "0000:3b:02.0"])
    allocate(run, "sriov_a", ["0000:3b:02.2"])
    assert value(port, "pycni_device_plugin_allocated_devices_total", resource=A) == 3
    assert scrape(port, "/nope")[0] == 404


def test_allocate_latency_is_a_histogram_that_moves_with_calls(
    start_service: Callable[..., Running], endpoint_of: Callable[[Running], Endpoint]
) -> None:
    run = start_service()
    port = endpoint_of(run).port
    wait_for(lambda: scrape(port, "/readyz")[0] == 200, what="every pool registered")
    name = "pycni_device_plugin_allocate_duration_seconds"
    assert value(port, name + "_count", resource=A) == 0
    allocate(run, "sriov_a", ["0000:3b:02.1"])
    allocate(run, "sriov_a", ["0000:3b:02.0", "0000:3b:02.2"])
    assert value(port, name + "_count", resource=A) == 2
    assert value(port, name + "_sum", resource=A) > 0
    assert value(port, name + "_bucket", resource=A, le="+Inf") == 2
    below = [value(port, name + "_bucket", resource=A, le=le) for le in ("0.0001", "0.001", "0.01", "10.0")]
    assert below == sorted(below)  # cumulative, from 0.1 ms up to 10 s


def test_health_changes_show_in_the_device_gauge(
    start_service: Callable[..., Running], endpoint_of: Callable[[Running], Endpoint], links_ns: str
) -> None:
    run = start_service(links_netns=links_ns)
    port = endpoint_of(run).port
    wait_for(
        lambda: value(port, "pycni_device_plugin_devices", resource=A, health="healthy") == 4, what="4 up"
    )
    set_link(links_ns, "ens1f0p", "down")  # the PF stand-in loses carrier: its VFs go unhealthy
    wait_for(
        lambda: value(port, "pycni_device_plugin_devices", resource=A, health="unhealthy") == 4, what="down"
    )
    assert value(port, "pycni_device_plugin_reconciles_total", kind="health") >= 1


def test_not_ready_until_kubelet_registers_and_not_alive_after_stop(
    start_service: Callable[..., Running], endpoint_of: Callable[[Running], Endpoint]
) -> None:
    run = start_service(kubelet=False)  # no kubelet.sock: nothing can register
    port = endpoint_of(run).port
    assert scrape(port, "/healthz")[0] == 200
    assert scrape(port, "/readyz")[0] == 503
    run.stop()
    assert scrape(port, "/healthz")[0] == 503

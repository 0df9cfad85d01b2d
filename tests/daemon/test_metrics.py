"""The node daemon's /metrics, /healthz and /readyz, served by the supervisor's own loop."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.daemon.conftest import runner
from tests.daemon.process import DaemonProcess
from tests.daemon.test_launcher import NETNS
from tests.helpers.poll import wait_until

CONF = {"cniVersion": "1.0.0", "name": "n", "type": "probe"}


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def metric(port: int, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(get(port, "/metrics")[1]):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def test_requests_errors_and_workers_show_in_metrics(daemon: DaemonProcess, daemon_bin: Path) -> None:
    port = daemon.status()["metrics_port"]
    assert get(port, "/healthz") == (200, "ok\n") and get(port, "/readyz")[0] == 200
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    for i in range(3):
        call("probe", "ADD", CONF, netns=NETNS, container_id=f"m{i}").ok()
    assert call("probe", "ADD", {**CONF, "raise_error": True}, netns=NETNS).json["code"] == 999
    # a worker reports to the supervisor after answering its caller: wait for the four reports
    wait_until(
        lambda: metric(port, "pycni_daemon_requests_total", type="probe", command="ADD") == 4, what="4"
    )
    assert metric(port, "pycni_daemon_request_errors_total", type="probe", command="ADD") == 1
    assert metric(port, "pycni_daemon_request_duration_seconds_count", type="probe", command="ADD") == 4
    assert metric(port, "pycni_daemon_request_duration_seconds_sum", type="probe", command="ADD") > 0
    assert metric(port, "pycni_daemon_workers") == 2


def buckets(port: int, name: str, **labels: str) -> dict[float, float]:
    """The histogram's cumulative bucket counts by upper bound."""
    return {
        float(s.labels["le"]): s.value
        for family in text_string_to_metric_families(get(port, "/metrics")[1])
        for s in family.samples
        if s.name == name + "_bucket" and all(s.labels.get(k) == v for k, v in labels.items())
    }


def test_duration_and_queue_wait_are_histograms_that_move_with_calls(
    daemon: DaemonProcess, daemon_bin: Path
) -> None:
    port = daemon.status()["metrics_port"]
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    call("probe", "ADD", CONF, netns=NETNS, container_id="h0").ok()
    duration = "pycni_daemon_request_duration_seconds"
    wait_until(lambda: buckets(port, duration, type="probe", command="ADD").get(float("inf")) == 1, what="1")
    call("probe", "ADD", {**CONF, "delay": 0.03}, netns=NETNS, container_id="h1").ok()
    wait_until(lambda: buckets(port, duration, type="probe", command="ADD").get(float("inf")) == 2, what="2")
    seen = buckets(port, duration, type="probe", command="ADD")
    assert min(seen) == 0.001 and max(b for b in seen if b != float("inf")) == 10.0  # 1 ms .. 10 s
    assert seen[0.025] <= 1 and seen[10.0] == 2  # the 30 ms call is above 25 ms
    assert list(seen.values()) == sorted(seen.values())  # cumulative
    queue_wait = "pycni_daemon_queue_wait_seconds"
    assert buckets(port, queue_wait, type="probe", command="ADD")[float("inf")] == 2
    assert metric(port, "pycni_daemon_memory_pss_bytes", process="workers") > 0
    assert metric(port, "pycni_daemon_memory_pss_bytes", process="supervisor") > 1 << 20


def test_a_call_that_finds_every_worker_busy_shows_its_wait_in_the_queue_histogram(
    daemon: DaemonProcess, daemon_bin: Path, tmp_path: Path
) -> None:
    port = daemon.status()["metrics_port"]
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    release = tmp_path / "release"
    held = {**CONF, "hold_until": str(release)}
    queue_wait = "pycni_daemon_queue_wait_seconds"
    with ThreadPoolExecutor(3) as pool:
        busy = [pool.submit(call, "probe", "ADD", held, netns=NETNS, container_id=f"b{i}") for i in range(2)]
        wait_until(lambda: metric(port, "pycni_daemon_workers_busy") == 2, what="both workers busy")
        queued = pool.submit(call, "probe", "ADD", CONF, netns=NETNS, container_id="q")
        wait_until(lambda: metric(port, "pycni_daemon_queued") == 1, what="the third call queued")
        time.sleep(0.3)  # the wait the queued call must show, not synchronisation
        release.touch()
        for done in [*busy, queued]:
            done.result().ok()

    def three_waits() -> dict[float, float] | None:
        waits = buckets(port, queue_wait, type="probe", command="ADD")
        return waits if waits.get(float("inf")) == 3 else None

    waits = wait_until(three_waits, what="three queue waits")
    assert waits[0.25] <= 2  # the queued call waited at least the 300 ms both workers were held
    assert metric(port, "pycni_daemon_queued") == 0


def test_the_endpoint_goes_with_the_daemon(daemon: DaemonProcess) -> None:
    port = daemon.status()["metrics_port"]
    assert get(port, "/readyz")[0] == 200
    assert daemon.stop() == 0
    try:
        get(port, "/healthz")
    except OSError:
        return
    raise AssertionError("the endpoint still answers after the daemon stopped")


def test_status_shows_where_the_last_requests_spent_their_time_and_the_memory(
    daemon: DaemonProcess, daemon_bin: Path
) -> None:
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    call("probe", "ADD", {**CONF, "delay": 0.05}, netns=NETNS, container_id="s0").ok()
    call("probe", "DEL", CONF, netns=NETNS, container_id="s0").ok()
    wait_until(lambda: len(daemon.status()["recent"]) == 2, what="two reports")
    status = daemon.status()
    add, delete = status["recent"]
    assert (add["type"], add["command"], add["code"]) == ("probe", "ADD", 0)
    assert delete["command"] == "DEL"
    for phase in ("queue_ms", "handoff_ms", "namespaces_ms", "plugin_ms"):
        assert add[phase] >= 0, phase
    assert add["plugin_ms"] >= 50  # the probe's delay is the plugin's own time
    parts = sum(ms for key, ms in add.items() if key.endswith("_ms") and key != "total_ms")
    assert abs(add["total_ms"] - parts) < 0.01  # the phases are exclusive and cover the request
    memory = status["memory"]
    assert len(memory["workers"]) == status["workers"] == 2
    assert memory["total_pss_mib"] > 0 and memory["supervisor"]["pss_kib"] > 0
    assert all(w["pss_kib"] > 0 for w in memory["workers"])

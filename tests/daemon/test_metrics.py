"""The node daemon's /metrics, /healthz and /readyz, served by the supervisor's own loop."""

from __future__ import annotations

import urllib.error
import urllib.request
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
    assert (
        metric(port, "pycni_daemon_request_duration_seconds", type="probe", command="ADD", quantile="0.5") > 0
    )
    assert metric(port, "pycni_daemon_workers") == 2


def test_the_endpoint_goes_with_the_daemon(daemon: DaemonProcess) -> None:
    port = daemon.status()["metrics_port"]
    assert get(port, "/readyz")[0] == 200
    assert daemon.stop() == 0
    try:
        get(port, "/healthz")
    except OSError:
        return
    raise AssertionError("the endpoint still answers after the daemon stopped")

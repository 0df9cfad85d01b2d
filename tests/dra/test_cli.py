"""`pycni dra-driver` as a process: argument and config errors, a clean SIGTERM, metrics and probes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.dra.node import DRIVER, PYCNI, DraNode


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The command without $NODE_NAME."""
    env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"}
    return subprocess.run(
        [str(PYCNI), "dra-driver", *args], capture_output=True, text=True, timeout=30, env=env, check=False
    )


def test_invalid_config_exits_2_naming_the_entry(workdir: Path) -> None:
    conf = workdir / "config.json"
    conf.write_text(
        json.dumps({"resourceList": [{"resourceName": "a"}, {"resourceName": "b", "selectors": 3}]})
    )
    out = run("--config", str(conf), "--node-name", "n1", "--plugins-dir", str(workdir / "plugins"))
    assert out.returncode == 2 and "resourceList[1] (b): selectors" in out.stderr
    assert not (workdir / "plugins").exists()  # refused before touching anything


def test_a_node_name_is_required(workdir: Path) -> None:
    conf = workdir / "config.json"
    conf.write_text(json.dumps({"resourceList": [{"resourceName": "a"}]}))
    out = run("--config", str(conf))
    assert out.returncode == 2 and "--node-name or $NODE_NAME" in out.stderr
    out = run("--config", str(conf), "--node-name", "../etc")
    assert out.returncode == 2


def test_a_resource_name_too_long_for_an_attribute_is_refused(workdir: Path) -> None:
    conf = workdir / "config.json"
    conf.write_text(
        json.dumps({"resourceList": [{"resourceName": "x" * 60, "resourcePrefix": "example.com"}]})
    )
    out = run("--config", str(conf), "--node-name", "n1")
    assert out.returncode == 2 and "longer than 64 characters" in out.stderr


def test_sigterm_leaves_kubelet_but_keeps_what_running_pods_need(dnode: DraNode) -> None:
    dnode.start()
    uid = dnode.add_claim("web", ["0000-3b-02-0"])
    dnode.kubelet.prepare(DRIVER, [("default", "web", uid)])
    assert dnode.stop() == 0
    assert not (dnode.workdir / "plugins_registry" / f"{DRIVER}-reg.sock").exists()
    assert not (dnode.plugin_dir / "dra.sock").exists()
    assert dnode.cdi_spec(uid) is not None and uid in dnode.checkpoint.read_text()
    assert len(dnode.pool_devices()) == 16  # slices stay: kubelet wipes them if the driver does not return
    assert dnode.logs()[-1]["msg"] == "stopped"


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match[1] or "") for k, v in labels.items()):
            return float(match[2])
    raise AssertionError(f"no {name} {labels} in /metrics")


def test_metrics_and_probes(dnode: DraNode) -> None:
    dnode.start()
    assert dnode.http("/healthz") == (200, "ok\n") and dnode.http("/readyz") == (200, "ok\n")
    uid = dnode.add_claim("web", ["0000-3b-02-0", "0000-3b-02-6"])
    dnode.kubelet.prepare(DRIVER, [("default", "web", uid), ("default", "gone", "0f0f0f0f")])
    dnode.kubelet.unprepare(DRIVER, [("default", "web", uid)])
    _, text = dnode.http("/metrics")
    assert metric(text, "pycni_dra_requests_total", operation="prepare") == 1
    assert metric(text, "pycni_dra_requests_total", operation="unprepare") == 1
    assert metric(text, "pycni_dra_request_duration_seconds_count", operation="prepare") == 1
    for operation in ("prepare", "unprepare"):  # histograms, from 1 ms to 10 s, that an alert can sum
        buckets = [
            metric(text, "pycni_dra_request_duration_seconds_bucket", operation=operation, le=le)
            for le in ("0.001", "0.005", "0.1", "10.0", "+Inf")
        ]
        assert buckets == sorted(buckets) and buckets[-1] == 1
    assert metric(text, "pycni_dra_claims_total", operation="prepare", result="success") == 1
    assert metric(text, "pycni_dra_claims_total", operation="prepare", result="error") == 1
    assert (
        metric(text, "pycni_dra_devices", resource="intel.com/intel_sriov_netdevice", health="healthy") == 10
    )
    assert metric(text, "pycni_dra_devices", resource="intel.com/intel_sriov_dpdk", health="healthy") == 6
    assert metric(text, "pycni_dra_prepared_claims") == 0
    assert metric(text, "pycni_dra_slice_publications_total", result="success") >= 1
    assert metric(text, "pycni_dra_registrations_total", result="success") == 1


def test_pycni_lists_the_command() -> None:
    out = subprocess.run([str(PYCNI), "--help"], capture_output=True, text=True, timeout=30, check=True)
    assert "dra-driver" in out.stdout


def test_start_up_objects_are_frozen_out_of_the_collectors_sight(dnode: DraNode) -> None:
    """A full collection over them took 25-50 ms, the stall of whatever Prepare it fell in."""
    dnode.start()
    frozen = [line for line in dnode.logs() if line["msg"] == "start-up objects frozen"]
    assert len(frozen) == 1 and frozen[0]["objects"] > 10_000

"""Real pods through the daemon: 32 bridge + host-local lifecycles at once, each with its own answer."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pycni.registry import lookup
from tests.daemon.conftest import runner
from tests.daemon.process import DaemonProcess
from tests.helpers.netns import Netns, unique

PODS = 32

pytestmark = pytest.mark.skipif(
    lookup("bridge") is None or lookup("host-local") is None, reason="bridge and host-local have not landed"
)


def test_32_concurrent_pod_lifecycles_get_distinct_correct_results(
    start: Callable[..., DaemonProcess], daemon_bin: Path, make_netns: Callable[..., Netns], tmp_path: Path
) -> None:
    daemon = start("--workers", "8")
    node = make_netns("pcn")
    pods = [make_netns("pcp") for _ in range(PODS)]
    conf = {
        "cniVersion": "1.0.0",
        "name": "lifenet",
        "type": "bridge",
        "bridge": unique("br", 12),
        "isGateway": True,
        "ipam": {
            "type": "host-local",
            "dataDir": str(tmp_path / "ipam"),
            "ranges": [[{"subnet": "10.123.0.0/24"}]],
        },
    }
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)

    def lifecycle(pod: Netns) -> tuple[dict[str, Any], set[str], int]:
        common: dict[str, Any] = {"netns": pod.path, "container_id": pod.name, "netns_exec": node.name}
        result = call("bridge", "ADD", conf, **common).ok()
        seen = {a for a in pod.addrs("eth0") if not a.startswith("fe80:")}  # the kernel's view
        return result, seen, call("bridge", "DEL", conf, **common).code

    with ThreadPoolExecutor(PODS) as pool:
        outcomes = list(pool.map(lifecycle, pods))

    addresses = []
    for pod, (result, seen, del_code) in zip(pods, outcomes, strict=True):
        (ip,) = result["ips"]
        assert seen == {ip["address"]}, f"{pod.name} got {ip['address']} but eth0 has {seen}"
        assert [(i["name"], i["sandbox"]) for i in result["interfaces"] if i.get("sandbox")] == [
            ("eth0", pod.path)
        ]
        assert del_code == 0
        addresses.append(ip["address"])
    assert len(set(addresses)) == PODS
    assert {name for name in node.link_names() if name.startswith("veth")} == set()
    assert not any(p.name[0].isdigit() for p in (tmp_path / "ipam" / "lifenet").iterdir())
    served = daemon.status()["latency"]
    assert served["bridge ADD"]["requests"] == PODS and served["bridge ADD"]["errors"] == 0
    assert served["bridge DEL"]["requests"] == PODS and served["bridge DEL"]["errors"] == 0

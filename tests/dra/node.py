"""A node for the DRA driver to run on, made of stand-ins: a fake sysfs tree (the SR-IOV hardware), a
network namespace holding veth stand-ins for the PF and VF netdevs (so link state is the kernel's),
the API server stand-in serving in that namespace (HTTPS, its own CA, resource.k8s.io/v1 and the
Node), the kubelet stand-in on the registry directory, and the installed `pycni dra-driver` run in
the namespace as kubelet's DaemonSet would run it. Shared by tests/dra and bench/dra_bench.py.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
from pyroute2 import IPRoute

from pycni.net import netns as cni_netns
from tests.dra.apirules import VERSION, slice_problem
from tests.dra.kubelet import FakeDraKubelet
from tests.helpers.fake_sysfs import FakeNode, build_sriov_node
from tests.helpers.netns import Netns
from tests.helpers.poll import wait_until
from tests.meta_multus.apiserver import FakeApiServer, Pki

DRIVER = "sriov.pycni.io"
NODE = "node-a"
RESOURCE_API = "resource.k8s.io/v1"
NETDEV = "intel.com/intel_sriov_netdevice"
DPDK = "intel.com/intel_sriov_dpdk"
#: 2 PFs x 8 VFs, kernel-netdev (iavf) and VFIO VFs mixed, on two NUMA nodes.
LAYOUT = (
    ("ens1f0", 0x3B, 0, "154c", ("iavf",) * 6 + ("vfio-pci",) * 2),
    ("ens1f1", 0x3C, 1, "154c", ("iavf",) * 4 + ("vfio-pci",) * 4),
)
CONFIG: dict[str, Any] = {
    "resourceList": [
        {
            "resourceName": "intel_sriov_netdevice",
            "resourcePrefix": "intel.com",
            "selectors": {"drivers": ["iavf"]},
        },
        {
            "resourceName": "intel_sriov_dpdk",
            "resourcePrefix": "intel.com",
            "selectors": {"drivers": ["vfio-pci"]},
        },
    ]
}
PYCNI = Path(sys.executable).parent / "pycni"
METRICS_PORT = 9163


def serve_resource_api(api: FakeApiServer, node: str = NODE) -> None:
    store = api.cluster.store
    store.serve(RESOURCE_API, "resourceslices", "ResourceSlice", namespaced=False, validate=slice_problem)
    store.serve(RESOURCE_API, "resourceclaims", "ResourceClaim", namespaced=True)
    store.serve("v1", "nodes", "Node", namespaced=False)
    store.add("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})


def add_links(ns: Netns, names: Iterable[str]) -> None:
    """An up veth stand-in (peer `<name>p`, also up) for each netdev."""
    with IPRoute(netns=ns.name, flags=0) as ipr:
        for ifname in names:
            ipr.link("add", ifname=ifname, kind="veth", peer=f"{ifname}p")
            for end in (ifname, f"{ifname}p"):
                ipr.link("set", index=ipr.link_lookup(ifname=end)[0], state="up")


def set_link(ns: Netns, ifname: str, state: str) -> None:
    with IPRoute(netns=ns.name, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state=state)


@dataclass
class DraNode:
    workdir: Path
    ns: Netns
    hw: FakeNode
    api: FakeApiServer
    kubelet: FakeDraKubelet
    config: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(CONFIG)))
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @classmethod
    def make(cls, workdir: Path, ns: Netns, pki: Pki, layout: Any = LAYOUT) -> DraNode:
        hw = build_sriov_node(workdir / "sys", layout)
        add_links(ns, hw.netdevs)
        api = FakeApiServer(pki, ns.path)
        serve_resource_api(api)
        (workdir / "plugins_registry").mkdir()
        kubelet = FakeDraKubelet(workdir / "plugins_registry")
        return cls(workdir, ns, hw, api, kubelet)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def plugin_dir(self) -> Path:
        return self.workdir / "plugins" / DRIVER

    @property
    def cdi_dir(self) -> Path:
        return self.workdir / "cdi"

    @property
    def checkpoint(self) -> Path:
        return self.plugin_dir / "state" / "checkpoint.json"

    @property
    def log(self) -> Path:
        return self.workdir / f"driver-{self.starts}.log"

    def cdi_spec(self, uid: str) -> dict[str, Any] | None:
        path = self.cdi_dir / f"{DRIVER}-vf_{uid}.json"
        return json.loads(path.read_text()) if path.exists() else None

    # -- the driver process --------------------------------------------------------------------
    def command(self, *extra: str) -> list[str]:
        conf = self.workdir / "conf" / "config.json"
        conf.parent.mkdir(exist_ok=True)
        if not conf.exists():
            conf.write_text(json.dumps(self.config))
        kubeconfig = self.api.kubeconfig(self.workdir / "kubeconfig")
        return [
            "ip", "netns", "exec", self.ns.name, str(PYCNI), "dra-driver", "--config", str(conf),
            "--kubeconfig", str(kubeconfig), "--plugins-dir", str(self.workdir / "plugins"),
            "--registry-dir", str(self.workdir / "plugins_registry"), "--cdi-dir", str(self.cdi_dir),
            "--no-udev", "--metrics-address", f"127.0.0.1:{METRICS_PORT}", *extra,
        ]  # fmt: skip

    def start(self, *extra: str, wait: bool = True) -> subprocess.Popen[bytes]:
        """Runs the driver (NODE_NAME and PYCNI_SYSFS_ROOT from the environment, as in the DaemonSet)."""
        self.starts += 1
        env = {**os.environ, "NODE_NAME": NODE, "PYCNI_SYSFS_ROOT": str(self.hw.sysfs.root)}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.command(*extra), env=env, stdout=log, stderr=log)
        if wait:
            wait_until(self.ready, timeout=30, what=f"the driver ready (log: {self.log})")
        return self.proc

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(20)
        self.proc = None
        return code

    def logs(self) -> list[dict[str, Any]]:
        """The driver's JSON log lines so far (a line still being written is left for later)."""
        return [json.loads(line) for line in self.log.read_text().splitlines(keepends=True)
                if line.startswith("{") and line.endswith("\n")]  # fmt: skip

    def http(self, path: str) -> tuple[int, str]:
        """GET the driver's endpoint, inside the node's namespace."""
        with cni_netns.entered(self.ns.path):
            conn = http.client.HTTPConnection("127.0.0.1", METRICS_PORT, timeout=5)
            conn.connect()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"the driver exited ({self.proc.returncode}): {self.log.read_text()[-3000:]}"
            )
        try:
            return self.http("/readyz")[0] == 200
        except OSError:
            return False

    # -- the cluster side ----------------------------------------------------------------------
    def slices(self) -> list[dict[str, Any]]:
        return self.api.cluster.store.items(RESOURCE_API, "resourceslices")

    def pool_devices(self) -> dict[str, dict[str, Any]]:
        """The devices of the node's pool at its newest generation, by name (complete pools only)."""
        ours = [s for s in self.slices() if s["spec"]["driver"] == DRIVER and s["spec"]["nodeName"] == NODE]
        if not ours:
            return {}
        newest = max(s["spec"]["pool"]["generation"] for s in ours)
        current = [s for s in ours if s["spec"]["pool"]["generation"] == newest]
        if len(current) != current[0]["spec"]["pool"]["resourceSliceCount"]:
            return {}
        return {d["name"]: d for s in current for d in s["spec"]["devices"]}

    def wait_pool(self, count: int, timeout: float = 5.0) -> dict[str, dict[str, Any]]:
        """The pool's devices once there are `count` of them."""
        found: dict[str, dict[str, Any]] = {}

        def complete() -> bool:
            nonlocal found
            found = self.pool_devices()
            return len(found) == count

        wait_until(complete, timeout, f"{count} devices in the pool")
        return found

    def add_claim(
        self, name: str, devices: list[str] | dict[str, list[str]], *, namespace: str = "default",
        pool: str = NODE, admin: bool = False,
    ) -> str:  # fmt: skip
        """An allocated ResourceClaim (valid against the 1.34 schema) for devices of this node; its uid.
        `devices`: a list for one request `vf`, or {request: devices}."""
        uid = str(uuid.uuid4())
        by_request = devices if isinstance(devices, dict) else {"vf": devices}
        extra = {"adminAccess": True} if admin else {}
        requests = [
            {"name": r, "exactly": {"deviceClassName": DRIVER, "count": len(d), **extra}}
            for r, d in by_request.items()
        ]
        results = [
            {"request": r, "driver": DRIVER, "pool": pool, "device": d, **extra}
            for r, ds in by_request.items()
            for d in ds
        ]
        claim = {
            "apiVersion": RESOURCE_API, "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "spec": {"devices": {"requests": requests}},
            "status": {"allocation": {"devices": {"results": results}}},
        }  # fmt: skip
        kubernetes_validate.validate(claim, VERSION, strict=True)
        self.api.cluster.store.add("resourceclaims", claim)
        return uid

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.kubelet.stop()
        self.api.stop()

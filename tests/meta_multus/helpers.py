"""Test support for multus: a simulated node (netns, work dirs, manifests), NAD and pod builders,
and an exec'd stand-in delegate that records its calls and fails on request.

multus runs inside the node namespace, as kubelet's runtime would run it on a node; the
delegates it calls (bridge, vxlan, host-device, host-local) are the real ones. Kernel state is
read back with `ip -j` (tests/helpers/netns.py), not with the code under test.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.cni import Outcome, Runner
from tests.helpers.netns import Netns, unique

STUB_TYPE = "mm-stub"

#: An exec'd delegate: records each call; `failOn` makes a verb fail while `failWhile` exists (or always).
STUB = """#!{python}
import json, os, sys
conf = json.load(sys.stdin)
cmd = os.environ["CNI_COMMAND"]
with open(conf["record"], "a") as f:
    f.write(json.dumps({{"cmd": cmd, "cid": os.environ.get("CNI_CONTAINERID"),
                        "ifname": os.environ.get("CNI_IFNAME"), "args": os.environ.get("CNI_ARGS"),
                        "conf": conf}}) + "\\n")
gate = conf.get("failWhile")
if conf.get("failOn") == cmd and (not gate or os.path.exists(gate)):
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": 107, "msg": "stub refused " + cmd}}))
    sys.exit(1)
if cmd == "ADD":
    print(json.dumps({{"cniVersion": conf["cniVersion"],
                      "interfaces": [{{"name": os.environ["CNI_IFNAME"],
                                       "sandbox": os.environ["CNI_NETNS"]}}],
                      "ips": [{{"address": conf.get("address", "192.0.2.200/24"), "interface": 0}}]}}))
"""


def install_stub(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / STUB_TYPE
    exe.write_text(STUB.format(python=sys.executable))
    exe.chmod(0o755)


def pod_manifest(
    name: str,
    namespace: str = "default",
    networks: str | list[dict[str, Any]] | None = None,
    uid: str | None = None,
    **annotations: str,
) -> dict[str, Any]:
    notes = dict(annotations)
    if networks is not None:
        notes["k8s.v1.cni.cncf.io/networks"] = networks if isinstance(networks, str) else json.dumps(networks)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or str(uuid.uuid4()),
            "annotations": notes,
        },
        "spec": {"containers": [{"name": "app", "image": "busybox"}], "futureField": {"kept": True}},
    }


def nad_manifest(
    name: str, config: dict[str, Any] | None, namespace: str = "default", resource: str = ""
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if resource:
        meta["annotations"] = {"k8s.v1.cni.cncf.io/resourceName": resource}
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": meta,
        "spec": {"config": json.dumps(config)} if config is not None else {},
    }


def write_manifests(directory: Path, objects: list[dict[str, Any]], name: str = "objects.yaml") -> None:
    """As a multi-document YAML file (JSON is YAML)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text("\n---\n".join(json.dumps(o) for o in objects) + "\n")


@dataclass
class MultusNode:
    """A node: its netns, the dirs multus and the delegates use, and a runner for multus."""

    ns: Netns
    tmp: Path
    runner: Runner
    pod_factory: Callable[[], Netns]
    cni_bin: Path
    #: A short directory for unix sockets (their paths must stay under 108 bytes).
    tmp_short: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cni_dir(self) -> Path:
        return self.tmp / "multus"

    @property
    def manifests(self) -> Path:
        return self.tmp / "manifests"

    @property
    def stub_bin(self) -> Path:
        return self.tmp / "bin"

    @property
    def record(self) -> Path:
        return self.tmp / "stub-calls.jsonl"

    @property
    def ipam_dir(self) -> Path:
        return self.tmp / "ipam"

    def pod(self) -> Netns:
        return self.pod_factory()

    def multus_conf(
        self, cluster: str = "cluster", cni_version: str = "1.1.0", **keys: Any
    ) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": cni_version,
            "name": "multus-cni-network",
            "type": "multus",
            "clusterNetwork": cluster,
            "multusNamespace": "kube-system",
            "confDir": str(self.tmp / "net.d"),
            "cniDir": str(self.cni_dir),
            "binDir": str(self.stub_bin),
            "deviceInfoDir": str(self.tmp / "devinfo"),
            "podResourcesSocket": str(self.tmp / "no-kubelet.sock"),
        }
        if "kubeconfig" not in keys:
            conf["manifests"] = str(self.manifests)
        conf.update(keys)
        return conf

    # -- delegate configs ----------------------------------------------------------------------
    def ipam(self, subnet: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "host-local",
            "dataDir": str(self.ipam_dir),
            "ranges": [[{"subnet": subnet, **extra}]],
        }

    def bridge(
        self, name: str, bridge: str, subnet: str, *, gateway: bool = False, **keys: Any
    ) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": name,
            "type": "bridge",
            "bridge": bridge,
            "isGateway": gateway,
            "isDefaultGateway": gateway,
            "ipam": self.ipam(subnet),
        }
        conf.update(keys)
        return conf

    def stub(self, name: str, **keys: Any) -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": name, "type": STUB_TYPE, "record": str(self.record), **keys}

    def stub_calls(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    # -- running multus ------------------------------------------------------------------------
    def multus(
        self,
        command: str,
        conf: dict[str, Any],
        pod: Netns | None,
        *,
        name: str = "",
        namespace: str = "default",
        uid: str = "",
        container_id: str = "ctr-1",
        ifname: str = "eth0",
    ) -> Outcome:
        args = ""
        if name:
            args = (
                f"K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={container_id}"
            )
            if uid:
                args += f";K8S_POD_UID={uid}"
        return self.runner(
            "multus",
            command,
            conf,
            netns=pod.path if pod is not None else ("" if command in ("DEL",) else None),
            container_id=container_id if command not in ("STATUS", "GC") else None,
            ifname=ifname if command not in ("STATUS", "GC") else None,
            cni_args=args or None,
            netns_exec=self.ns.name,
            env=self.env,
        )

    # -- what is left ---------------------------------------------------------------------------
    def leases(self) -> list[str]:
        """host-local's reservations, every network."""
        if not self.ipam_dir.exists():
            return []
        return sorted(
            f"{d.name}/{f.name}"
            for d in self.ipam_dir.iterdir()
            if d.is_dir()
            for f in d.iterdir()
            if f.name[0].isdigit() or ":" in f.name
        )

    def cached_results(self) -> list[str]:
        results = self.cni_dir / "results"
        return sorted(p.name for p in results.iterdir()) if results.exists() else []

    def plans(self) -> list[str]:
        return sorted(p.name for p in self.cni_dir.iterdir() if p.is_file()) if self.cni_dir.exists() else []

    def veths(self) -> list[str]:
        return sorted(n for n in self.ns.link_names() if n.startswith("veth"))

    def network_status(self, pod_name: str, namespace: str = "default") -> Any:
        path = self.cni_dir / "network-status" / namespace / f"{pod_name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def stand_in(self) -> str:
        """A veth end in the node netns, its peer too (a NIC for host-device)."""
        name = unique("hd")
        self.ns.run("ip", "link", "add", name, "type", "veth", "peer", "name", unique("hq"))
        return name

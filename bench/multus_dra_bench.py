"""A pod's ADD+DEL through `multus` with one VF attached by `sriov`: the VF claimed through DRA
(a NAD naming `<claim>/<request>`, the claim's network data written after ADD) next to the same
VF given by the device plugin (a NAD naming the resource, the kubelet's pod-resources API asked).

Run as root: `.venv/bin/python bench/multus_dra_bench.py [--runs N] [--json out.json]`.
The NIC is a fake SR-IOV tree (`tests/helpers/fake_sysfs.py`) with veth stand-ins for its VFs'
netdevs; PF-side settings go to a JSON file. Every pod also gets its cluster network (bridge +
host-local). Pods, NADs, ResourceClaims and ResourceSlices come from a manifest directory and,
in the other pair of variants, from the API server stand-in (HTTPS, tests/meta_multus/apiserver.py),
where a claim means a GET of the claim, a list of the driver's slices and a status PUT more.
multus runs in a `pycni daemon`, the production path. Variants are interleaved run by run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import add_del_report, exec_plugin, node_with_pods, sh
from bench.lifecycle_bench import start_daemon
from pycni.install import install
from tests.helpers.fake_sysfs import FakeVf, build_sriov_node
from tests.helpers.podresources import FakePodResources
from tests.meta_multus import claims as dra
from tests.meta_multus.apiserver import FakeApiServer, make_pki

RESOURCE = "pycni.io/sriov_a"
LAYOUT = ((dra.PF, 0x3B, 0, "154c", ("iavf",) * 2),)


@dataclass
class Variant:
    name: str
    pod: str
    keys: dict[str, Any]
    add: list[float] = field(default_factory=list)
    delete: list[float] = field(default_factory=list)


def network(name: str, work: Path, keys: dict[str, Any], subnet: str) -> dict[str, Any]:
    ipam = {"type": "host-local", "dataDir": str(work / "ipam"), "ranges": [[{"subnet": subnet}]]}
    return {"cniVersion": "1.1.0", "name": name, "ipam": ipam, **keys}


def nad(name: str, namespace: str, config: dict[str, Any], resource: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if resource:
        meta["annotations"] = {"k8s.v1.cni.cncf.io/resourceName": resource}
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition", "metadata": meta,
            "spec": {"config": json.dumps(config)}}  # fmt: skip


def objects(work: Path, vfs: list[FakeVf]) -> list[dict[str, Any]]:
    """The cluster network, a device-plugin NAD and a claim NAD, pod `dp` and pod `claimed`."""
    bridge = {"type": "bridge", "bridge": "mdb0", "isGateway": True, "isDefaultGateway": True}
    sriov = {"type": "sriov", "vlan": 100, "spoofchk": "on"}
    dp_pod = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "dp", "namespace": "default", "uid": "uid-dp",
                           "annotations": {"k8s.v1.cni.cncf.io/networks": "vf-dp"}}}  # fmt: skip
    return [
        nad("podnet", "kube-system", network("podnet", work, bridge, "10.212.0.0/16")),
        nad("vf-dp", "default", network("vf-dp", work, sriov, "10.213.0.0/16"), RESOURCE),
        nad("vf-claim", "default", network("vf-claim", work, sriov, "10.214.0.0/16"), f"net/{dra.REQUEST}"),
        dp_pod,
        dra.pod_with_claim("claimed", "vf-claim", "vfs"),
        dra.claim_manifest("vfs", [vfs[1]]),
        dra.slice_manifest(vfs),
    ]


def lifecycle(v: Variant, work: Path, bin_dir: Path, env: dict[str, str], pod_ns: str) -> None:
    conf = {"cniVersion": "1.1.0", "name": "multus-cni-network", "type": "multus", "clusterNetwork": "podnet",
            "cniDir": str(work / "multus"), "binDir": str(bin_dir),
            "podResourcesSocket": str(work / "podres.sock"),
            "deviceInfoDir": str(work / "devinfo"), **v.keys}  # fmt: skip
    call_env = {**env, "CNI_CONTAINERID": pod_ns, "CNI_NETNS": f"/run/netns/{pod_ns}",
                "CNI_IFNAME": "eth0", "CNI_PATH": str(bin_dir),
                "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={v.pod}"}  # fmt: skip
    for label, sink in (("ADD", v.add), ("DEL", v.delete)):
        seconds, proc = exec_plugin(bin_dir / "multus", label, conf, call_env)
        if proc.returncode != 0:
            raise RuntimeError(f"{v.name} {label} failed: {proc.stdout!r} {proc.stderr!r}")
        sink.append(seconds)


def run(args: argparse.Namespace, work: Path, pods: list[str]) -> list[Variant]:
    bin_dir = work / "bin"
    install(bin_dir)
    vfs = build_sriov_node(work / "sys", LAYOUT).vfs
    for vf in vfs:
        sh("ip", "link", "add", vf.netdev or "", "type", "veth", "peer", "name", f"{vf.netdev}p")
        sh("ip", "link", "set", f"{vf.netdev}p", "up")  # the wire's end: the VF gets a carrier
    objs = objects(work, vfs)
    (work / "manifests").mkdir()
    (work / "manifests" / "objects.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
    )
    api = FakeApiServer(make_pki(work / "pki"), f"/proc/{os.getpid()}/ns/net")
    dra.serve(api.cluster)
    api.cluster.conflicts = 0
    for obj in objs:
        plural = {"ResourceClaim": "resourceclaims", "ResourceSlice": "resourceslices"}.get(obj["kind"])
        if plural:
            api.cluster.store.add(plural, obj)
        else:
            api.cluster.add(obj)
    kubelet = FakePodResources(work / "podres.sock")
    kubelet.allocate("default", "dp", RESOURCE, [vfs[0].address])
    (work / "sock").mkdir(mode=0o700)
    daemon = start_daemon(work / "sock" / "daemon.sock", args.workers)
    env = {"PYCNI_DAEMON": "required", "PYCNI_DAEMON_SOCKET": str(work / "sock" / "daemon.sock"),
           "PYCNI_SYSFS_ROOT": str(work / "sys"), "PYCNI_SRIOV_VF_STATE": str(work / "vf-state.json"),
           "PYCNI_STATE_DIR": str(work / "state"), "PYCNI_RUN_DIR": str(work / "run")}  # fmt: skip
    manifests = {"manifests": str(work / "manifests")}
    kubeconfig = {"kubeconfig": str(api.kubeconfig(work / "kubeconfig"))}
    chosen = [
        Variant("device-plugin VF, manifests", "dp", manifests),
        Variant("claimed VF, manifests", "claimed", manifests),
        Variant("device-plugin VF, API server", "dp", kubeconfig),
        Variant("claimed VF, API server", "claimed", kubeconfig),
    ]
    try:
        pod_iter = iter(pods)
        for i in range(args.warmup + args.runs):
            for v in chosen:
                lifecycle(v, work, bin_dir, env, next(pod_iter))
                if i < args.warmup:
                    v.add.clear()
                    v.delete.clear()
        written = api.cluster.store.items(dra.API, "resourceclaims")[0]["status"].get("devices")
        if not written:
            raise RuntimeError("the claimed VF's network data never reached the claim")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        kubelet.stop()
        api.stop()
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="lifecycles per variant")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="daemon workers")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    count = 4 * (args.warmup + args.runs)
    with node_with_pods("mdb", count) as pods, tempfile.TemporaryDirectory(prefix="mdb") as tmp:
        results = add_del_report(run(args, Path(tmp), pods), "multus ADD and DEL with one sriov VF")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the plugins write is private: files 0600, the directories they create 0700.

Real lifecycles through the installed executables (every launcher and daemon mode of the `cni`
fixture): a pod on the SR-IOV flow (device plugin, kubelet stand-in, multus from manifests,
sriov with host-local), host-local alone, and the node installer's kubeconfig. After ADD, while
everything exists, each directory a component owns is walked.
"""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from pycni.node_install import primary
from pycni.node_install.run import Installer, InstallerOptions
from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.meta_multus.helpers import MultusNode
from tests.meta_multus.test_device_flow import Kubelet, vf_stand_in, write_fast_network

pytestmark = pytest.mark.netns


def violations(root: Path) -> list[str]:
    """`root` and everything below it that is not a 0700 directory or a 0600 file."""
    found = []
    paths = [root, *root.rglob("*")] if root.exists() else []
    for path in paths:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_symlink():
            continue
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            found.append(f"{path} {oct(mode)} (want {oct(want)})")
    return found


DELEGATES = ["sriov", "host-device"]


def sriov_pod(mnode: MultusNode, kubelet: Kubelet, delegate_type: str) -> tuple[Netns, dict[str, object]]:
    """ADD a pod with the cluster network and an allocated VF (taken by `delegate_type`) through
    multus; the pod and its config."""
    ids = kubelet.allocate("default", "web")
    vf_stand_in(mnode, kubelet, ids[0])
    delegate: dict[str, object] = {
        "cniVersion": "1.0.0",
        "name": "fast",
        "type": delegate_type,
        "ipam": mnode.ipam("10.60.0.0/24"),
    }
    if delegate_type == "sriov":
        delegate["vlan"] = 7  # a PF-side setting: written to the VF state file
    write_fast_network(mnode, delegate, "fast")
    mnode.env.update(
        PYCNI_SRIOV_VF_STATE=str(mnode.tmp / "vf" / "vf-state.json"),
        PYCNI_SYSFS_ROOT=str(kubelet.node.sysfs.root),
    )
    conf = mnode.multus_conf(podResourcesSocket=str(kubelet.pod_resources.socket))
    pod = mnode.pod()
    mnode.multus("ADD", conf, pod, name="web").ok()
    return pod, conf


@pytest.mark.parametrize("delegate_type", DELEGATES)
def test_multus_and_device_files(mnode: MultusNode, kubelet: Kubelet, delegate_type: str) -> None:
    """multus's plans, result cache and network-status; the device-info copies; the VF state file."""
    pod, conf = sriov_pod(mnode, kubelet, delegate_type)
    try:
        assert (mnode.cni_dir / "ctr-1").is_file() and (mnode.cni_dir / "network-status").is_dir()
        copies = mnode.tmp / "devinfo" / "cni"
        assert list(copies.iterdir()), "the device-info copy handed to the delegate"
        assert delegate_type != "sriov" or (mnode.tmp / "vf" / "vf-state.json").is_file()
        dp = mnode.tmp / "devinfo" / "dp"
        problems = violations(mnode.cni_dir) + violations(copies) + violations(mnode.tmp / "vf")
        problems += [p for p in violations(mnode.tmp / "devinfo") if not p.startswith(f"{dp}/")]
        assert not problems, "\n".join(problems)
        # the device plugin's own files stay 0444 as the reference writes them: never writable
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o444 for f in dp.iterdir())
    finally:
        mnode.multus("DEL", conf, pod, name="web").ok()
    assert mnode.plans() == []


@pytest.mark.parametrize("delegate_type", DELEGATES)
def test_state_store_and_lock_files(mnode: MultusNode, kubelet: Kubelet, delegate_type: str) -> None:
    """host-local's store, sriov's and host-device's state and records, the lock files:
    everything under the state, run and IPAM directories, created by the plugins."""
    pod, conf = sriov_pod(mnode, kubelet, delegate_type)
    try:
        state, run = Path(mnode.env["PYCNI_STATE_DIR"]), Path(mnode.env["PYCNI_RUN_DIR"])
        assert state.exists() and run.exists() and mnode.ipam_dir.exists()
        problems = violations(state) + violations(run) + violations(mnode.ipam_dir)
        assert not problems, "\n".join(problems)
    finally:
        mnode.multus("DEL", conf, pod, name="web").ok()


def test_host_local_store(cni: Runner, make_netns: object, tmp_path: Path) -> None:
    pod: Netns = make_netns("secm")  # type: ignore[operator]
    data = tmp_path / "ipam"
    conf = {
        "cniVersion": "1.0.0",
        "name": "net",
        "type": "host-local",
        "ipam": {"type": "host-local", "dataDir": str(data), "ranges": [[{"subnet": "10.98.0.0/28"}]]},
    }
    env = {"PYCNI_STATE_DIR": str(tmp_path / "state"), "PYCNI_RUN_DIR": str(tmp_path / "run")}
    cni("host-local", "ADD", conf, netns=pod.path, env=env).ok()
    try:
        problems = violations(data)
        assert not problems, "\n".join(problems)
    finally:
        cni("host-local", "DEL", conf, netns=pod.path, env=env).ok()


def test_node_install_kubeconfig(tmp_path: Path) -> None:
    """The installer's kubeconfig (it carries the service account's token) and its directory."""
    conf_dir = tmp_path / "etc" / "cni" / "net.d"
    sa = tmp_path / "sa"
    conf_dir.mkdir(parents=True)
    sa.mkdir()
    (sa / "token").write_text("token-1")
    (sa / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (conf_dir / "10-bridge.conf").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "b", "type": "bridge"})
    )
    opts = InstallerOptions(
        bin_dirs=(),
        conf_dir=conf_dir,
        autoconfig_dir=conf_dir,
        multus=primary.MultusOptions(kubeconfig_host="/etc/cni/net.d/multus.d/multus.kubeconfig"),
        service_account_dir=sa,
        watch=False,
    )
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    Installer(opts, env, lambda directory: None).run(threading.Event())
    kubeconfig = conf_dir / "multus.d" / "multus.kubeconfig"
    assert "token-1" in kubeconfig.read_text()
    assert not violations(kubeconfig.parent), violations(kubeconfig.parent)

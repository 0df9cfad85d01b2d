"""The soak's node: namespaces, the installed executables, the networks and the node daemon.

Everything lives in places this process makes and removes: a "node" netns the process enters
(bridges, VXLAN devices, masquerade rules and the VF stand-ins are all inside it), a "wire" netns
holding the stand-ins' peers, a pod netns per lifecycle, a private mount namespace (so the
read-only remount of the IPAM store is seen by this process and its children only) and one
temporary directory for every file. Deleting the namespaces and the directory undoes it all.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycni.daemon.client import NoDaemon, status
from pycni.install import fallback_path, install
from tests.helpers.fake_sysfs import FakeVf, build_sriov_node
from tests.helpers.netns import enter_netns, sh

REPO = Path(__file__).resolve().parents[3]
CLONE_NEWNS = 0x00020000
UNDERLAY = "soakul0"
LOCAL_IP = "192.0.2.1"
PF = "ens9f0"

#: Writes one line per request the plugin code starts running, tagged with where it ran:
#: "F <request>" in an exec'd launcher or forwarder fallback, "D<epoch> <request>" in a
#: daemon worker. A request id seen twice ran twice.
RUN_LOG_HOOK = """
import pycni.daemon.launcher as _soak_launcher
_soak_run_here = _soak_launcher.run_here
def _soak_logged_run_here(plugin_type):
    import os
    request = os.environ.get("PYCNI_SOAK_REQ")
    if request:
        fd = os.open(os.environ["PYCNI_SOAK_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, ("F " + request + "\\n").encode())
        os.close(fd)
    _soak_run_here(plugin_type)
_soak_launcher.run_here = _soak_logged_run_here
"""

DAEMON_MAIN = """
import os, sys
import pycni.registry as registry
_run = registry.run
_epoch = os.environ["SOAK_EPOCH"]
def _logged_run(plugin_type, env, stdin, out):
    request = env.get("PYCNI_SOAK_REQ")
    if request:
        fd = os.open(env["PYCNI_SOAK_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, ("D" + _epoch + " " + request + "\\n").encode())
        os.close(fd)
    return _run(plugin_type, env, stdin, out)
registry.run = _logged_run
from pycni.cli import main
sys.exit(main(["daemon", *sys.argv[1:]]))
"""

FAILING_PLUGIN = """#!/bin/sh
# a delegate that fails every ADD; DEL, CHECK, GC and STATUS succeed
cat >/dev/null
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion": "1.1.0", "code": 100, "msg": "soak-fail: injected ADD failure"}'; exit 1 ;;
VERSION) echo '{"cniVersion": "1.1.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}' ;;
esac
exit 0
"""


@dataclass(frozen=True)
class Network:
    """One network of the node: its base config, the pod's interface name, its IPAM store name."""

    name: str
    ifname: str
    conf: dict[str, Any]
    #: host-local network directories this network allocates from.
    stores: tuple[str, ...]


def _ipam(data_dir: Path, subnet: str, **extra: str) -> dict[str, Any]:
    return {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": subnet, **extra}]]}


def _bridge(name: str, bridge: str, data_dir: Path, subnet: str, **keys: Any) -> dict[str, Any]:
    ipam = _ipam(data_dir, subnet, **keys.pop("range", {}))
    return {"cniVersion": "1.1.0", "name": name, "type": "bridge", "bridge": bridge, "ipam": ipam, **keys}


def build_networks(work: Path) -> dict[str, Network]:
    """The networks every lifecycle picks from (soak_plan.NETWORKS)."""
    ipam = work / "ipam"
    gateway = {"isGateway": True}
    tiny_range = {"rangeStart": "10.133.0.2", "rangeEnd": "10.133.0.3"}
    vxlan = {
        "cniVersion": "1.1.0",
        "name": "soak-vx",
        "type": "vxlan",
        "vni": 4242,
        "localIP": LOCAL_IP,
        "remotes": ["192.0.2.2", "192.0.2.3"],
        "isGateway": True,
        "ipMasq": True,
        "ipam": _ipam(ipam, "10.134.0.0/16"),
    }
    sriov = {
        "cniVersion": "1.1.0",
        "name": "soak-sriov",
        "type": "sriov",
        "vlan": 100,
        "spoofchk": "on",
        "trust": "off",
        "ipam": _ipam(ipam, "10.136.0.0/16"),
    }
    host_device = {
        "cniVersion": "1.1.0",
        "name": "soak-hd",
        "type": "host-device",
        "ipam": _ipam(ipam, "10.135.0.0/16"),
    }
    multus = {
        "cniVersion": "1.1.0",
        "name": "multus-cni-network",
        "type": "multus",
        "clusterNetwork": "podnet",
        "manifests": str(work / "manifests"),
        "cniDir": str(work / "multus"),
    }
    nets = [
        Network(
            "bridge-nft",
            "eth0",
            _bridge(
                "soak-nft", "sbrnft", ipam, "10.131.0.0/16", ipMasq=True, ipMasqBackend="nftables", **gateway
            ),
            ("soak-nft",),
        ),
        Network(
            "bridge-ipt",
            "eth0",
            _bridge(
                "soak-ipt", "sbript", ipam, "10.132.0.0/16", ipMasq=True, ipMasqBackend="iptables", **gateway
            ),
            ("soak-ipt",),
        ),
        Network(
            "bridge-tiny",
            "eth0",
            _bridge("soak-tiny", "sbrtiny", ipam, "10.133.0.0/24", range=tiny_range),
            ("soak-tiny",),
        ),
        Network("vxlan", "eth0", vxlan, ("soak-vx",)),
        Network("host-device", "net1", host_device, ("soak-hd",)),
        Network("sriov", "net1", sriov, ("soak-sriov",)),
        Network("multus", "eth0", multus, ("podnet", "storage")),
    ]
    return {n.name: n for n in nets}


def multus_objects(work: Path) -> list[dict[str, Any]]:
    """The NetworkAttachmentDefinitions of the manifest directory (pods are added per lifecycle)."""
    ipam = work / "ipam"
    nads = [
        (
            "podnet",
            "kube-system",
            _bridge("podnet", "sbrm0", ipam, "10.137.0.0/16", isGateway=True, isDefaultGateway=True),
        ),
        (
            "storage",
            "default",
            _bridge("storage", "sbrm1", ipam, "10.138.0.0/16", isGateway=True, ipMasq=True),
        ),
        ("broken", "default", {"cniVersion": "1.1.0", "name": "broken", "type": "soak-fail"}),
    ]
    return [
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"config": json.dumps(conf)},
        }
        for name, namespace, conf in nads
    ]


def _unshare_mounts() -> int:
    """A mount namespace of our own; an fd of the machine's, which we leave.

    Ours is a slave of the machine's: its mounts (the netns files under /run/netns, which
    `ip netns` makes there, see `Node.netns`) reach us, ours (the read-only store) stay here.
    """
    machine = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        os.close(machine)
        raise OSError(err, "unshare(CLONE_NEWNS)")
    sh("mount", "--make-rslave", "/")
    return machine


@dataclass
class Daemon:
    """One run of the node daemon; `epoch` numbers the runs (the request log names it)."""

    proc: subprocess.Popen[bytes]
    socket: Path
    epoch: int

    def status(self) -> dict[str, Any]:
        return status(str(self.socket))

    def workers(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class NicKeeper:
    """The kernel's part for the fake NIC: a VF netdev whose netns dies comes back to the node.

    A real NIC's netdev is not destroyed with a netns: the kernel moves it back (down) to the
    initial netns. Each stand-in is a veth whose peer `w<index>` lives in the wire netns, so a
    stand-in that died with a pod's netns, or with the temporary netns of a plugin killed
    mid-move, shows as that peer's RTM_DELLINK there; the keeper then makes the pair again, with
    the VF's netdev in the node, down, under its original name, MAC and MTU. (The kernel keeps the
    name the device had, which sysfs then lists at its PCI address; the fake tree lists netdevs
    statically, so the stand-in comes back under the name the tree lists. Finding a VF back under
    its pod-side name is covered by the sriov and host-device tests.)
    """

    def __init__(
        self, wire_ns: str, node_ns: str, vfs: list[FakeVf], attrs: dict[int, tuple[str, int]]
    ) -> None:
        self.wire_ns, self.node_ns, self.vfs = wire_ns, node_ns, {vf.index: vf for vf in vfs}
        self.attrs = attrs  # index -> (MAC, MTU) the stand-in had when the NIC was built
        self.returned: Counter[int] = Counter()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="fake-nic", daemon=True)
        self.ready = threading.Event()

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("the fake NIC's watcher did not start")

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)

    def _watch(self) -> None:
        from pyroute2 import IPRoute

        from pycni.net.netns import entered

        with entered(f"/run/netns/{self.wire_ns}"):
            ipr = IPRoute()
        try:
            ipr.bind()
            ipr.settimeout(0.2)  # to look at `stopping` now and then
            self.ready.set()
            while not self.stopping.is_set():
                try:
                    messages = ipr.get()
                except (TimeoutError, OSError):
                    continue
                for msg in messages:
                    name = msg.get_attr("IFLA_IFNAME") or ""
                    if msg["event"] == "RTM_DELLINK" and name[:1] == "w" and name[1:].isdigit():
                        self.bring_back(int(name[1:]))
        finally:
            ipr.close()

    def all_back(self) -> bool:
        """Every stand-in has its wire peer: no VF netdev is still inside a dying netns.

        The kernel hands a device back within moments of its netns's end, long before a runtime
        GCs; the soak's final GC waits for this so it meets the node a runtime would.
        """
        lines = sh("ip", "-n", self.wire_ns, "-o", "link", "show").splitlines()
        present = {line.split(": ")[1].split("@")[0] for line in lines if ": " in line}
        return all(f"w{index}" in present for index in self.vfs)

    def bring_back(self, index: int) -> None:
        vf = self.vfs.get(index)
        if vf is None or self.stopping.is_set():
            return
        mac, mtu = self.attrs[index]
        netdev = vf.kernel_netdev
        sh("ip", "-n", self.wire_ns, "link", "add", f"w{index}", "type", "veth",
           "peer", "name", netdev, "netns", self.node_ns)  # fmt: skip
        sh("ip", "-n", self.node_ns, "link", "set", netdev, "address", mac, "mtu", str(mtu))
        sh("ip", "-n", self.wire_ns, "link", "set", f"w{index}", "up")
        self.returned[index] += 1


@dataclass
class Node:
    """The soak's node; `open()` builds it, `close()` removes everything (also after a failure)."""

    workers: int = 4
    vfs: int = 8
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    work: Path = Path()
    node_ns: str = ""
    wire_ns: str = ""
    pods: set[str] = field(default_factory=set)
    sriov_vfs: list[FakeVf] = field(default_factory=list)
    host_device_vfs: list[FakeVf] = field(default_factory=list)
    networks: dict[str, Network] = field(default_factory=dict)
    daemon: Daemon | None = None
    epochs: int = 0
    mounted: bool = False
    vf_snapshot: str = ""
    machine_mounts: int = -1
    nic: NicKeeper | None = None

    # -- paths ----------------------------------------------------------------------------------
    @property
    def ipam_dir(self) -> Path:
        return self.work / "ipam"

    @property
    def run_log(self) -> Path:
        return self.work / "requests.log"

    @property
    def socket(self) -> Path:
        return self.work / "sock" / "daemon.sock"

    def bin_dir(self, mode: str) -> Path:
        return self.work / ("bin-native" if mode.endswith("native") else "bin-python")

    def env(self, mode: str) -> dict[str, str]:
        """The node-wide part of a plugin call's environment."""
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_PATH": str(self.bin_dir(mode)),
            "PYCNI_STATE_DIR": str(self.work / "state"),
            "PYCNI_RUN_DIR": str(self.work / "run"),
            "PYCNI_SYSFS_ROOT": str(self.work / "sys"),
            "PYCNI_SRIOV_VF_STATE": str(self.work / "vf-state.json"),
            "PYCNI_DAEMON": "off" if mode.startswith("exec") else "auto",
            "PYCNI_DAEMON_SOCKET": str(self.socket),
            "PYCNI_DAEMON_ACCEPT_TIMEOUT": "5",
            "PYCNI_SOAK_LOG": str(self.run_log),
        }

    # -- building -------------------------------------------------------------------------------
    def open(self) -> None:
        """Build the node; on failure the caller still calls `close()`."""
        self.machine_mounts = _unshare_mounts()
        self.work = Path(tempfile.mkdtemp(prefix="pycni-soak-"))
        self.node_ns, self.wire_ns = f"psk{self.tag}n", f"psk{self.tag}w"
        for ns in (self.node_ns, self.wire_ns):
            self.netns("add", ns)
        enter_netns(f"/run/netns/{self.node_ns}")
        sh("ip", "link", "set", "lo", "up")
        sh(
            "ip",
            "-n",
            self.wire_ns,
            "link",
            "add",
            "ul",
            "type",
            "veth",
            "peer",
            "name",
            UNDERLAY,
            "netns",
            self.node_ns,
        )
        sh("ip", "-n", self.wire_ns, "link", "set", "ul", "up")
        sh("ip", "addr", "add", f"{LOCAL_IP}/24", "dev", UNDERLAY)
        sh("ip", "link", "set", UNDERLAY, "up")
        for sub in ("state", "run", "multus", "manifests", "sock", "ipam"):
            (self.work / sub).mkdir(mode=0o700)
        self._nic()
        self._executables()
        self.networks = build_networks(self.work)
        (self.work / "manifests" / "networks.json").write_text(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": multus_objects(self.work)})
        )
        sh("mount", "--bind", str(self.ipam_dir), str(self.ipam_dir))
        self.mounted = True
        self.start_daemon()

    def _nic(self) -> None:
        """A fake NIC: half its VFs for sriov, half for host-device; veth stand-ins as netdevs."""
        vfs = build_sriov_node(self.work / "sys", [(PF, 0x5E, 0, "154c", ("iavf",) * self.vfs)]).vfs
        state = {}
        for vf in vfs:
            sh(
                "ip",
                "-n",
                self.wire_ns,
                "link",
                "add",
                f"w{vf.index}",
                "type",
                "veth",
                "peer",
                "name",
                vf.kernel_netdev,
                "netns",
                self.node_ns,
            )
            sh("ip", "link", "set", vf.kernel_netdev, "up")
            sh("ip", "-n", self.wire_ns, "link", "set", f"w{vf.index}", "up")
            state[str(vf.index)] = {
                "mac": f"02:00:00:00:5e:{vf.index:02x}",
                "vlan": 7,
                "qos": 0,
                "vlan_proto": "802.1Q",
                "spoofchk": False,
                "trust": False,
                "link_state": "auto",
                "max_tx_rate": 0,
                "min_tx_rate": 0,
            }
        (self.work / "vf-state.json").write_text(json.dumps({PF: state}))
        half = len(vfs) // 2
        self.sriov_vfs, self.host_device_vfs = vfs[:half], vfs[half:]
        self.vf_snapshot = (self.work / "vf-state.json").read_text()
        links = {link["ifname"]: link for link in json.loads(sh("ip", "-j", "link", "show"))}
        attrs = {vf.index: (links[vf.kernel_netdev]["address"], links[vf.kernel_netdev]["mtu"]) for vf in vfs}
        self.nic = NicKeeper(self.wire_ns, self.node_ns, vfs, attrs)
        self.nic.start()

    def _executables(self) -> None:
        """Both kinds of executable, each logging the requests it runs in-process, and soak-fail."""
        for mode, kind in (("exec-python", "python"), ("exec-native", "native")):
            bin_dir = self.bin_dir(mode)
            install(bin_dir, launcher=kind)  # type: ignore[arg-type]
            for name in os.listdir(bin_dir):
                if name.startswith("."):
                    continue
                script = bin_dir / name if kind == "python" else fallback_path(bin_dir, name)
                text = script.read_text()
                marker = "from pycni.daemon.launcher import"
                script.write_text(text.replace(marker, RUN_LOG_HOOK.strip() + "\n" + marker, 1))
            failing = bin_dir / "soak-fail"
            failing.write_text(FAILING_PLUGIN)
            failing.chmod(0o755)

    def start_daemon(self) -> Daemon:
        self.epochs += 1
        env = {**os.environ, "SOAK_EPOCH": str(self.epochs), "PYCNI_DAEMON_SOCKET": ""}
        args = ["--socket", str(self.socket), "--workers", str(self.workers), "--metrics-address="]
        with (self.work / "daemon.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", DAEMON_MAIN, *args], cwd=REPO, stdout=log, stderr=log, env=env
            )
        self.daemon = Daemon(proc, self.socket, self.epochs)
        deadline = time.monotonic() + 90
        while True:
            try:
                self.daemon.status()
                return self.daemon
            except NoDaemon:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the daemon did not start: {self.daemon_log_tail()}") from None
                time.sleep(0.05)

    def daemon_log_tail(self) -> str:
        try:
            return (self.work / "daemon.log").read_text()[-2000:]
        except OSError:
            return ""

    # -- pods -----------------------------------------------------------------------------------
    def add_pod_netns(self, index: int) -> str:
        name = f"psk{self.tag}p{index}"
        self.netns("add", name)
        self.pods.add(name)
        return name

    def delete_pod_netns(self, name: str) -> None:
        self.netns("del", name, check=False)
        self.pods.discard(name)

    def netns(self, verb: str, name: str, check: bool = True) -> None:
        """`ip netns add|del` in the machine's mount namespace, as every other netns is made.

        Made in ours, the netns's mount would stay here while its file appeared in the
        machine's /run/netns, a dangling name there if this process were killed.
        """
        argv = ["ip", "netns", verb, name]
        if self.machine_mounts >= 0:
            argv = ["nsenter", f"--mount=/proc/{os.getpid()}/fd/{self.machine_mounts}", *argv]
        subprocess.run(argv, check=check, capture_output=True)

    def set_store_readonly(self, readonly: bool) -> bool:
        """Remount the IPAM store read-only or back; False when the kernel kept refusing.

        A read-only remount fails (EBUSY) while a file there is open for writing: retried
        for a while, as the writers come and go.
        """
        flag = "ro" if readonly else "rw"
        deadline = time.monotonic() + (2.0 if readonly else 30.0)
        while True:
            proc = subprocess.run(
                ["mount", "-o", f"remount,bind,{flag}", str(self.ipam_dir)], check=False, capture_output=True
            )
            if proc.returncode == 0:
                return True
            if time.monotonic() > deadline:
                if readonly:
                    return False
                raise RuntimeError(f"cannot remount {self.ipam_dir} {flag}: {proc.stderr!r}")
            time.sleep(0.005)

    # -- removing -------------------------------------------------------------------------------
    def close(self) -> None:
        """Remove everything, whatever state the run left it in."""
        if self.nic is not None:
            self.nic.stop()
        if self.daemon is not None:
            self.daemon.stop(timeout=40)
        for pod in list(self.pods):
            self.delete_pod_netns(pod)
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.ipam_dir)], check=False, capture_output=True)
        for ns in (self.wire_ns, self.node_ns):
            if ns:
                self.netns("del", ns, check=False)
        if self.work != Path():
            shutil.rmtree(self.work, ignore_errors=True)
        if self.machine_mounts >= 0:
            os.close(self.machine_mounts)
            self.machine_mounts = -1

"""containerd 1.6 with its CRI plugin, run by the tests inside a node netns, in private dirs.

Everything it keeps is under one work dir (root, state, sockets, logs); its CNI `bin_dir` and
`conf_dir` are the test's. It is started with `nsenter --net` (not `ip netns exec`, which
remounts /sys and loses the cgroup mounts runc needs) and stopped, killed or restarted by its
pid. Cleanup removes every sandbox through the CRI, as kubelet would, then stops containerd
and reaps what it left: its shims (found by the socket address they were given), mounts under
the work dir and its netns files.

Its `/var/run/netns` is the work dir's `run-netns`, in a mount namespace of its own: a netns
file it made, under the path it reports, lives on the machine under the work dir, so one it
left (killed while it made a sandbox, before the sandbox was recorded) is reaped with the rest,
and another test's containerd never shares the directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from tests.e2e.cri import Cri, CriError
from tests.helpers.netns import Netns
from tests.helpers.poll import wait_until

SANDBOX_IMAGE = "docker.io/pycni/pause:e2e"
#: Where containerd keeps its pods' netns files unless `netns_mounts_under_state_dir`.
RUN_NETNS = Path("/var/run/netns")
#: Run in containerd's own mount namespace: the host's /run/netns stops propagating there, and
#: the (shared) work dir's `run-netns` takes its place with the netns files already in it (a
#: restarted containerd finds its pods'), so those it binds show on the machine under the work
#: dir. $1 run-netns, $2 the config.
IN_OWN_RUN_NETNS = (
    'mount --make-rslave /run/netns && mount --rbind "$1" /run/netns && exec containerd --config "$2"'
)


@dataclass
class Containerd:
    work: Path
    node: Netns
    bin_dir: Path
    conf_dir: Path
    stubs: tuple[ModuleType, ModuleType]
    #: containerd's `netns_mounts_under_state_dir`: pods' netns files under its state dir.
    netns_under_state: bool = False
    #: Extra environment, which containerd passes on to the CNI plugins it execs.
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    cri: Cri | None = None

    @property
    def socket(self) -> Path:
        return self.work / "c.sock"

    @property
    def state(self) -> Path:
        return self.work / "state"

    @property
    def log(self) -> Path:
        return self.work / "containerd.log"

    @property
    def run_netns(self) -> Path:
        """containerd's /var/run/netns as the machine sees it."""
        return self.work / "run-netns"

    def host_path(self, netns: str) -> str:
        """A netns path containerd reported, as this process reaches it."""
        path = Path(netns)
        return str(self.run_netns / path.name) if path.parent == RUN_NETNS else netns

    def _share_work(self) -> None:
        """Make the work dir a shared mount (once: again would cover what is mounted in it), as
        iproute2 makes /run/netns: what containerd mounts under it, in its own mount namespace
        (netns files, rootfs), shows here too and outlives a containerd restart."""
        if self.run_netns.exists():
            return
        self.run_netns.mkdir()
        subprocess.run(["mount", "--bind", self.work, self.work], check=True)
        subprocess.run(["mount", "--make-shared", self.work], check=True)

    def config(self) -> str:
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""version = 2
root = "{self.work / "root"}"
state = "{self.state}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[{cri}]
  sandbox_image = "{SANDBOX_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  netns_mounts_under_state_dir = {str(self.netns_under_state).lower()}
  [{cri}.cni]
    bin_dir = "{self.bin_dir}"
    conf_dir = "{self.conf_dir}"
    max_conf_num = 1
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
"""

    def start(self) -> None:
        """Start (or restart) containerd and wait until its CRI answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "config.toml").write_text(self.config())
        self._share_work()
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    "nsenter",
                    f"--net={self.node.path}",  # entered before its path is covered
                    "unshare",
                    "--mount",
                    "--propagation=unchanged",
                    "sh",
                    "-c",
                    IN_OWN_RUN_NETNS,
                    "sh",
                    str(self.run_netns),
                    str(self.work / "config.toml"),
                ],
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,
            )
        if self.cri is None:
            self.cri = Cri(self.socket, self.stubs, self.work / "pod-logs")
        wait_until(self._answers, timeout=60.0, what=f"containerd on {self.socket}")

    def _answers(self) -> bool:
        assert self.proc is not None and self.cri is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"containerd exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}"
            )
        try:
            self.cri.version()
            return True
        except CriError:
            return False

    def import_image(self, archive: Path) -> None:
        subprocess.run(
            ["ctr", "-a", str(self.socket), "-n", "k8s.io", "images", "import", str(archive)],
            check=True,
            capture_output=True,
        )

    def kill(self) -> None:
        """SIGKILL containerd alone: its shims and the pods' processes live on, as in a crash."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def remove_all_sandboxes(self) -> list[str]:
        """Stop and remove every sandbox as kubelet would; what failed."""
        assert self.cri is not None
        failures = []
        for sandbox_id in self.cri.sandboxes():
            try:
                self.cri.stop_and_remove(sandbox_id)
            except CriError as err:
                failures.append(str(err))
        return failures

    def cleanup(self) -> None:
        """Remove every sandbox, stop containerd, and reap anything it left on the machine."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(CriError, AssertionError):
                self.remove_all_sandboxes()
        self.stop()
        if self.cri is not None:
            self.cri.close()
        for pid in self.shims():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.shims(), timeout=30.0, what="containerd's shims to exit")
        self._unmount_under(self.work)
        subprocess.run(["umount", "-l", self.work], check=False, capture_output=True)

    def shims(self) -> list[int]:
        """The pids of the shims this containerd started (they name its socket in their arguments)."""
        mine = []
        address = str(self.socket).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and address in argv:
                mine.append(int(entry.name))
        return mine

    @staticmethod
    def _unmount_under(root: Path) -> None:
        """Unmount everything mounted under `root`, deepest first (rootfs overlays, netns binds)."""
        prefix = str(root) + "/"
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                mounts.append(point)
        for point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

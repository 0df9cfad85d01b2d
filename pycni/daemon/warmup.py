"""Real requests run in the supervisor before the workers fork, so the hot paths are warm in shared pages.

CPython (3.11 and later) rewrites a function's bytecode in place while it runs: it counts the
first calls of a code object, then replaces generic instructions with specialised ones and
keeps counters in caches beside them. Each of those writes lands in the code object, so a
worker forked before the hot paths ever ran copies every page of bytecode it executes: after
a mixed load, ~3 MiB of each worker's ~10 MiB of private memory (docs/daemon.md, "Memory").
Run here first, the rewriting happens once, in pages every worker shares; a worker then writes
little more than reference counts. Its first requests are faster for the same reason.

The requests are a node's commonest: a bridge + host-local pod's ADD, CHECK and DEL,
host-local on its own, a config that fails, and a multus pod with a secondary network (its
NADs and Pod from a scratch manifest directory: multus's own work and its in-process
delegates are warmed; an API client's requests are not), all through the worker's own
`run_as_caller`. They run in two unnamed network namespaces made for the purpose (a "node" and
a "pod"), with every file they write in a temporary directory: nothing of the node's is
touched, and the kernel frees both namespaces when their fds close. Warming is an optimisation:
if a request fails (a kernel that refuses, a full disk), the daemon says why and serves cold;
it does not run where its links would make the kernel load a module.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from pycni.cni import env_names
from pycni.daemon import wire
from pycni.daemon.namespaces import Home
from pycni.daemon.protocol import KIND_CNI
from pycni.daemon.worker import arm_deadlines, run_as_caller
from pycni.net import netns

log = logging.getLogger("pycni.daemon")

#: Seconds one warm-up request may take; more means something is wrong: stop warming.
REQUEST_TIMEOUT = 10.0


class WarmUpFailed(Exception):
    """A warm-up request did not answer as it should."""


#: The kernel modules the warm-up's links need, and where the kernel lists them.
MODULES = ("bridge", "veth")
PROC_MODULES = Path("/proc/modules")


def warm_up(cycles: int) -> bool:
    """Run `cycles` pod lifecycles in scratch namespaces; whether they all ran as they should."""
    if cycles <= 0:
        return False
    missing = missing_modules()
    if missing:
        log.info("pycni daemon: no warm-up, it would load kernel modules: %s", ", ".join(missing))
        return False
    started = time.perf_counter()
    try:
        with _quiet(), _scratch() as scratch:
            for n in range(cycles):
                scratch.pod_lifecycle(n)
    except Exception as err:  # an optimisation only: never keep the daemon from serving
        log.warning("pycni daemon: warm-up skipped, workers start cold: %s", err)
        return False
    ms = (time.perf_counter() - started) * 1000
    log.info("pycni daemon: warm-up ran %d pod lifecycles in %.0f ms", cycles, ms)
    return True


def missing_modules() -> list[str]:
    """The modules the warm-up would make this kernel load (`modules_not_loaded`)."""
    return modules_not_loaded(PROC_MODULES, Path("/lib/modules", os.uname().release, "modules.builtin"))


def modules_not_loaded(proc_modules: Path, builtin: Path) -> list[str]:
    """Which of `MODULES` making a link would load now (the warm-up must not change the node).

    A kernel without module support (no /proc/modules) has what it has built in; otherwise a
    module counts when it is loaded, or listed as built in. An unreadable list counts as missing.
    """
    try:
        loaded = {line.split(" ", 1)[0] for line in proc_modules.read_text().splitlines()}
    except FileNotFoundError:
        return []
    except OSError:
        return list(MODULES)
    with suppress(OSError):
        loaded |= {Path(line).name.removesuffix(".ko") for line in builtin.read_text().splitlines()}
    return [name for name in MODULES if name not in loaded]


class Scratch:
    """The scratch node and pod namespaces, the state directory, and the requests run in them."""

    def __init__(self, home: Home, node_fd: int, pod_fd: int, state: Path) -> None:
        self.home = home
        self.fds = (node_fd, home.mnt_fd, pod_fd)
        ipam = {"type": "host-local", "dataDir": str(state / "ipam"), "ranges": [[{"subnet": "10.0.0.0/24"}]]}
        self.ipam_only = {"cniVersion": "1.1.0", "name": "warm-up-ipam", "ipam": ipam}
        self.bridge = {
            "cniVersion": "1.1.0",
            "name": "warm-up",
            "type": "bridge",
            "bridge": "warmup0",
            "isGateway": True,
            "ipam": ipam,
        }
        self.multus = {
            "cniVersion": "1.1.0",
            "name": "warm-up-multus",
            "type": "multus",
            "clusterNetwork": "warm-up",
            "manifests": str(_manifests(state / "manifests", self.bridge)),
            "confDir": str(state / "multus-conf"),
            "cniDir": str(state / "multus"),
            "binDir": str(state / "bin"),
        }
        self.env = {
            "CNI_PATH": str(state / "bin"),  # none: our own host-local runs in-process
            "CNI_IFNAME": "eth0",
            "CNI_NETNS": f"/proc/{os.getpid()}/fd/{pod_fd}",
            env_names.STATE_DIR: str(state / "state"),
            env_names.RUN_DIR: str(state / "run"),
        }

    def pod_lifecycle(self, n: int) -> None:
        """ADD, CHECK and DEL of a bridge pod; host-local ADD and DEL; a config refused; a multus pod."""
        container = {"CNI_CONTAINERID": f"warm-up-{n}"}
        added = self.request("bridge", "ADD", self.bridge, container)
        self.request("bridge", "CHECK", {**self.bridge, "prevResult": json.loads(added)}, container)
        self.request("bridge", "DEL", self.bridge, container)
        self.request("host-local", "ADD", self.ipam_only, container)
        self.request("host-local", "DEL", self.ipam_only, container)
        self.request("bridge", "ADD", {**self.bridge, "mtu": "x"}, container, code=1)
        pod = {
            "CNI_CONTAINERID": f"warm-up-multus-{n}",
            "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={POD}",
        }
        added = self.request("multus", "ADD", self.multus, pod)
        self.request("multus", "CHECK", {**self.multus, "prevResult": json.loads(added)}, pod)
        self.request("multus", "DEL", self.multus, pod)

    def request(
        self, plugin: str, command: str, conf: dict[str, Any], env: dict[str, str], code: int = 0
    ) -> str:
        """One request as a worker runs it; its output, if it exited with `code`."""
        full_env = {**self.env, **env, "CNI_COMMAND": command}
        req = wire.Request(KIND_CNI, plugin, full_env, json.dumps(conf).encode(), self.fds)
        outcome = run_as_caller(req, self.home, REQUEST_TIMEOUT)
        if outcome.code != code:
            raise WarmUpFailed(f"{plugin} {command} exited {outcome.code}: {outcome.out.strip()}")
        return outcome.out


#: The pod the multus requests are for: in the scratch manifests, with one secondary network.
POD = "warm-up"


def _manifests(directory: Path, bridge: dict[str, Any]) -> Path:
    """The scratch cluster network and a secondary one (bridges of their own), and the pod."""
    secondary = {**bridge, "name": "warm-up-2", "bridge": "warmup1", "isGateway": False}
    secondary["ipam"] = {**bridge["ipam"], "ranges": [[{"subnet": "10.0.1.0/24"}]]}
    nads = [("kube-system", "warm-up", bridge), ("default", "warm-up-2", secondary)]
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"config": json.dumps(conf)},
        }
        for namespace, name, conf in nads
    ]
    annotations = {"k8s.v1.cni.cncf.io/networks": "warm-up-2"}
    items.append(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": POD, "namespace": "default", "annotations": annotations},
        }
    )
    directory.mkdir()
    (directory / "objects.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return directory


@contextmanager
def _scratch() -> Iterator[Scratch]:
    """Scratch namespaces and a state directory, all gone after the block."""
    home = Home.current()
    with ExitStack() as stack:
        stack.callback(os.close, home.net_fd)
        stack.callback(os.close, home.mnt_fd)
        state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pycni-warm-up-")))
        node_fd = stack.enter_context(netns.temporary())
        pod_fd = stack.enter_context(netns.temporary())
        yield Scratch(home, node_fd, pod_fd, state)


@contextmanager
def _quiet() -> Iterator[None]:
    """No log lines from the warm-up's requests (one refuses its config on purpose), and their
    overrun ends in `RequestTimeout` as in a worker, not in SIGALRM's default: exit."""
    previous_handler = signal.getsignal(signal.SIGALRM)
    previous_level = logging.root.manager.disable
    arm_deadlines()
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous_level)
        signal.signal(signal.SIGALRM, previous_handler)

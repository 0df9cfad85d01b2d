"""The soak's schedule: every pod's lifecycle and every node-wide fault, drawn from one seed.

The schedule is fixed before anything runs, so a seed replays the same pods on the same
networks, with the same command orderings and the same faults at the same points; only the
timing of the machine differs between two runs.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

#: Networks of the soak node (`node` builds them) and what each attaches.
NETWORKS = ("bridge-nft", "bridge-ipt", "bridge-tiny", "vxlan", "host-device", "sriov", "multus")
#: How the runtime runs the executables: the Python launcher or the native forwarder, each
#: either without the daemon (the plugin runs in the exec'd process) or with it (auto mode:
#: forwarded when the daemon takes the request, run in-process otherwise).
MODES = ("exec-python", "exec-native", "daemon-python", "daemon-native")

#: Faults injected into one pod's lifecycle.
POD_FAULTS = (
    "kill_plugin_add",  # SIGKILL of the exec'd plugin mid-ADD
    "kill_plugin_del",  # SIGKILL of the exec'd plugin mid-DEL
    "kill_launcher",  # SIGKILL of the launcher or forwarder of a forwarded ADD or DEL
    "kill_worker",  # SIGKILL of the daemon worker running the pod's ADD or DEL
    "netns_gone",  # the pod's netns deleted before DEL
    "delegate_failure",  # a multus secondary network whose delegate fails its ADD
    # what container runtimes do to a pod's calls (docs/kubernetes.md, "Container runtimes"):
    "double_del",  # containerd's two DELs of a sandbox at once, the second with an empty CNI_NETNS
    "del_empty_netns",  # a DEL with CNI_NETNS empty, the netns removed after it
    "runtime_restart_add",  # the runtime restarts mid-ADD: the ADD never ends, DEL then ADD again
)
#: The faults that SIGKILL something partway through a call.
KILLS = ("kill_plugin_add", "kill_plugin_del", "kill_launcher", "kill_worker", "runtime_restart_add")
#: Faults on the whole node, at points of the run.
NODE_FAULTS = ("daemon_restart", "store_readonly")
FAULT_KINDS = POD_FAULTS + NODE_FAULTS

#: Devices moved into the pod: a netns that dies holding one (the pod's, or the unnamed one a
#: plugin renames it in, which a killed process takes with it) hands it back to the node, which
#: the fake NIC models (`node.NicKeeper`), so these take every fault too.
MOVED_DEVICE = ("host-device", "sriov")


@dataclass(frozen=True)
class PodPlan:
    index: int
    network: str
    mode: str
    check: bool
    #: Extra DELs after the first successful one (the runtime retrying or restarting).
    repeat_del: int
    #: Two DELs at once, as a runtime racing its own retry.
    concurrent_del: bool
    #: A GC of the pod's network with the live attachments, after this pod's ADD.
    gc_after: bool
    fault: str | None
    #: The command the kill hits ("ADD" or "DEL"), for the kill faults.
    kill_op: str
    #: When the kill lands: a fraction of the typical latency of that call.
    kill_at: float
    #: Seconds between ADD and DEL.
    lifetime: float


@dataclass(frozen=True)
class NodeEvent:
    #: Fires once this many lifecycles have started.
    after: int
    kind: str
    #: daemon_restart: with requests in flight (True) or at a quiet point (False).
    busy: bool
    #: store_readonly: seconds the store stays read-only.
    hold: float


@dataclass(frozen=True)
class Schedule:
    seed: int
    pods: tuple[PodPlan, ...]
    events: tuple[NodeEvent, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "pods": [asdict(p) for p in self.pods],
            "events": [asdict(e) for e in self.events],
        }


def fault_targets() -> list[tuple[str, str]]:
    """Every (fault, network) the schedule covers: each pod fault on every type it applies to."""
    return [(f, n) for f in POD_FAULTS for n in NETWORKS if f != "delegate_failure" or n == "multus"]


def _network_for(rng: random.Random, fault: str | None) -> str:
    if fault == "delegate_failure":
        return "multus"
    return rng.choice(NETWORKS)


def _mode_for(rng: random.Random, fault: str | None) -> str:
    if fault in ("kill_plugin_add", "kill_plugin_del"):
        return rng.choice(MODES[:2])
    if fault in ("kill_launcher", "kill_worker"):
        return rng.choice(MODES[2:])
    # an exec'd Python plugin costs ~0.4 s of CPU per call: most pods go through the daemon
    return rng.choices(MODES, weights=(1, 1, 3, 4))[0]


def _pod(
    rng: random.Random, index: int, faults: bool, fault_rate: float, cover: list[tuple[str, str]]
) -> PodPlan:
    """One pod; while `cover` has (fault, network) pairs left, faulted pods take them in turn."""
    fault = rng.choice(POD_FAULTS) if faults and rng.random() < fault_rate else None
    network = _network_for(rng, fault)
    if fault is not None and cover:
        fault, network = cover.pop()
    kill_op = {"kill_plugin_add": "ADD", "kill_plugin_del": "DEL", "runtime_restart_add": "ADD"}.get(
        fault or "", rng.choice(("ADD", "DEL"))
    )
    return PodPlan(
        index=index,
        network=network,
        mode=_mode_for(rng, fault),
        check=rng.random() < 0.5,
        repeat_del=rng.choice((0, 0, 0, 1, 2)),
        concurrent_del=rng.random() < 0.08,
        gc_after=rng.random() < 0.05,
        fault=fault,
        kill_op=kill_op,
        kill_at=rng.uniform(0.05, 0.9),
        lifetime=rng.choice((0.0, 0.0, rng.uniform(0.0, 0.3))),
    )


def plan_schedule(seed: int, lifecycles: int, faults: bool, fault_rate: float = 0.35) -> Schedule:
    """The whole run's schedule for `seed`: a pure function of its arguments."""
    rng = random.Random(seed)
    cover = fault_targets()
    rng.shuffle(cover)
    pods = tuple(_pod(rng, i, faults, fault_rate, cover) for i in range(lifecycles))
    events: list[NodeEvent] = []
    if faults:
        restarts = max(2, lifecycles // 60)
        readonly = max(2, lifecycles // 80)
        for n in range(restarts):
            # the first two: one quiet, one under load, so a short run has both
            busy = rng.random() < 0.5 if n > 1 else n == 1
            events.append(NodeEvent(rng.randrange(1, max(2, lifecycles - 1)), "daemon_restart", busy, 0.0))
        for _ in range(readonly):
            hold = rng.uniform(0.2, 0.6)
            events.append(NodeEvent(rng.randrange(1, max(2, lifecycles - 1)), "store_readonly", False, hold))
    events.sort(key=lambda e: (e.after, e.kind))
    return Schedule(seed, pods, tuple(events))

"""Soak: many randomized pod lifecycles at once, with faults, and the invariants checked after.

Run as root: `.venv/bin/python bench/soak.py --lifecycles 5000 --concurrency 16 --faults [--seed S] [--json]`
(the command line is `cli`'s); `tests/soak` runs a short one.

A throw-away node (`node`: a node netns this process enters, a pod netns per
lifecycle, a fake SR-IOV NIC with veth stand-ins, the installed executables of both kinds, a
node daemon) runs every plugin type: bridge (masquerade through nftables and iptables, and a
two-address network that runs out), vxlan, host-device, sriov and multus from a manifest
directory. Each lifecycle is what a runtime does: ADD, maybe CHECK, maybe a GC of the network
with the live attachments, DEL until it succeeds, DEL again. The faults (`plan`)
kill the plugin, the launcher or the daemon worker mid-request, delete the pod's netns before
DEL, restart the daemon, fail a multus delegate and make the IPAM store read-only for a moment.

Checked while it runs: no address held by two pods at once (ADD results and samples of every
pod's addresses), no reservation outliving its attachment's DEL, every failure a spec error
object. Checked at the end: nothing left behind (addresses, links, bridge ports, FDB entries,
masquerade rules, device and multus records, temp files, lock files beyond the shared
resources'), every VF as it was, the daemon's counters balanced and no request run twice.

The schedule is drawn from `--seed` (printed first and in the report); the same seed replays
the same schedule. The exit status is non-zero when an invariant failed.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tests.helpers.fake_sysfs import FakeVf
from tests.helpers.poll import wait_until
from tests.helpers.soak.checks import (
    daemon_balance,
    epoch_runs,
    leaked_fdb,
    leaked_files,
    leaked_links,
    leaked_rules,
    lock_file_bound,
    lock_files,
    pod_addresses,
    request_log,
    reservations,
    vf_links_snapshot,
    vf_state,
)
from tests.helpers.soak.node import REPO, Node
from tests.helpers.soak.plan import FAULT_KINDS, NodeEvent, PodPlan, Schedule, plan_schedule
from tests.helpers.timing import percentile

#: A DEL that has not succeeded after this long is a failure (the runtime would retry forever).
DEL_DEADLINE = 90.0
#: How long an ADD answered "try again later" is retried before that counts as its answer.
ADD_RETRY_DEADLINE = 60.0
#: The faults that kill something during an ADD.
ADD_KILLS = ("kill_plugin_add", "kill_launcher", "kill_worker", "runtime_restart_add")
#: Findings kept in full in the report (the counts are always complete).
KEEP = 50


@dataclass(frozen=True)
class SoakOptions:
    lifecycles: int = 200
    concurrency: int = 8
    faults: bool = True
    seed: int | None = None
    workers: int = 4
    vfs: int = 8


@dataclass
class SoakReport:
    seed: int
    lifecycles: int
    concurrency: int
    faults_enabled: bool
    faults: dict[str, int] = field(default_factory=dict)
    #: Pod faults that landed, by "<fault> <network>": every kind on every plugin type.
    faults_by_type: dict[str, int] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    observed: dict[str, int] = field(default_factory=dict)
    daemon: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.leaks or self.duplicates or self.failures)

    def first_failure(self) -> str:
        for findings in (self.failures, self.duplicates, self.leaks):
            if findings:
                return findings[0]
        return ""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            ok=self.ok,
            leak_count=len(self.leaks),
            duplicate_ips=len(self.duplicates),
            failure_count=len(self.failures),
        )
        for key in ("leaks", "duplicates", "failures"):
            out[key] = out[key][:KEEP]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SoakReport:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class Aborted(Exception):
    """The run was interrupted: no further plugin calls."""


class RWGate:
    """Many holders at once (requests), or one exclusive one (a quiet daemon restart, a GC)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._writer = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class Call:
    command: str
    code: int | None
    stdout: bytes
    seconds: float
    request: str
    killed: bool = False
    #: A node-wide fault overlapped the call (the store was read-only, the daemon restarted).
    excused: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0

    def answer(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.stdout)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def describe(self) -> str:
        return f"{self.command} [{self.request}] exit {self.code}: {self.stdout[:400]!r}"


@dataclass
class Pod:
    plan: PodPlan
    netns: str
    container_id: str
    ifname: str
    vf: FakeVf | None = None
    name: str = ""


class Soak:
    def __init__(self, options: SoakOptions, schedule: Schedule, node: Node, log: bool) -> None:
        self.options, self.schedule, self.node, self.log = options, schedule, node, log
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.aborted = threading.Event()
        self.restart_gate = RWGate()
        self.net_gates = {name: RWGate() for name in node.networks}
        self.faults: Counter[str] = Counter()
        self.faults_by_type: Counter[str] = Counter()
        self.checks: Counter[str] = Counter()
        self.observed: Counter[str] = Counter()
        self.failures: list[str] = []
        self.duplicates: list[str] = []
        self.latency: dict[str, list[float]] = {"ADD": [], "DEL": []}
        #: Seconds of successful calls by (command, the pod's fault or "none").
        self.latency_by_fault: dict[tuple[str, str], list[float]] = {}
        self.typical: dict[tuple[str, str], list[float]] = {}
        self.live: dict[str, set[str]] = {name: set() for name in node.networks}  # network -> container IDs
        self.live_pods: dict[str, Pod] = {}
        self.finished: set[str] = set()
        self.addresses: dict[str, str] = {}  # ip -> container ID
        self.answered: dict[str, str] = {}  # request -> container ID, for successful calls
        self.started = 0
        self.readonly = False
        self.node_fault_gen = 0
        #: Bumped by every worker kill: a request that died by SIGKILL while one landed was hit by
        #: it (a worker can take the next request between the check and the kill).
        self.worker_kill_gen = 0
        self.worker_kills: Counter[int] = Counter()
        self.epoch_stats: list[tuple[int, dict[str, Any], bool]] = []
        self.procs: set[subprocess.Popen[bytes]] = set()
        self.vf_pools: dict[str, queue.Queue[FakeVf]] = {"sriov": queue.Queue(), "host-device": queue.Queue()}
        for vf in node.sriov_vfs:
            self.vf_pools["sriov"].put(vf)
        for vf in node.host_device_vfs:
            self.vf_pools["host-device"].put(vf)

    # -- bookkeeping ----------------------------------------------------------------------------
    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)
        if self.log:
            print(f"FAIL: {what}", file=sys.stderr, flush=True)

    def landed(self, kind: str, pod: Pod) -> None:
        """A pod fault took effect: counted by kind, and by kind and plugin type."""
        with self.lock:
            self.faults[kind] += 1
            self.faults_by_type[f"{kind} {pod.plan.network}"] += 1

    def typical_seconds(self, mode: str, command: str) -> float:
        samples = self.typical.get((mode, command))
        if not samples:
            return 0.5 if mode.startswith("exec") else 0.05
        return sorted(samples)[len(samples) // 2]

    # -- one call -------------------------------------------------------------------------------
    def call(
        self, pod: Pod, command: str, conf: dict[str, Any], kill: str | None = None, netns: str | None = None
    ) -> Call:
        """Run the pod's executable for `command` as a runtime does; `kill` injects that fault;
        `netns` replaces CNI_NETNS (containerd's second DEL sends it empty)."""
        plan = pod.plan
        request = f"{pod.container_id}.{command}.{uuid.uuid4().hex[:8]}"
        net = self.node.networks[plan.network]
        env = self._env(pod, command, request, netns)
        binary = self.node.bin_dir(plan.mode) / str(net.conf["type"])
        if self.aborted.is_set():
            raise Aborted
        with self.restart_gate.shared():
            gen = self.node_fault_gen
            worker_kills = self.worker_kill_gen
            readonly = self.readonly
            started = time.perf_counter()
            proc = subprocess.Popen(
                [str(binary)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            with self.lock:
                self.procs.add(proc)
            try:
                assert proc.stdin is not None
                with suppress(BrokenPipeError):
                    proc.stdin.write(json.dumps(conf).encode())
                    proc.stdin.close()
                killed = self._inject(proc, pod, command, kill) if kill else False
                assert proc.stdout is not None
                out = proc.stdout.read()
                proc.stdout.close()
                proc.wait()
            finally:
                with self.lock:
                    self.procs.discard(proc)
            seconds = time.perf_counter() - started
            excused = readonly or self.readonly or gen != self.node_fault_gen
            hit = proc.returncode == -signal.SIGKILL and worker_kills != self.worker_kill_gen
            if hit and not (killed or excused):  # not its own kill: another pod's landed on its worker
                excused = True
                with self.lock:
                    self.observed["killed_with_another_pods_worker"] += 1
        result = Call(command, proc.returncode, out, seconds, request, killed, excused)
        if result.ok:
            with self.lock:
                self.answered[request] = pod.container_id
                self.typical.setdefault((plan.mode, command), []).append(seconds)
                if command in self.latency:
                    self.latency[command].append(seconds)
                    self.latency_by_fault.setdefault((command, plan.fault or "none"), []).append(seconds)
        elif not killed and proc.returncode is not None and proc.returncode > 0:
            self._check_error_object(result)
        return result

    def _env(self, pod: Pod, command: str, request: str, netns: str | None) -> dict[str, str]:
        """The call's environment, as a runtime sets it."""
        env = {**self.node.env(pod.plan.mode), "CNI_COMMAND": command, "PYCNI_SOAK_REQ": request}
        if command != "GC":
            env |= {
                "CNI_CONTAINERID": pod.container_id,
                "CNI_NETNS": f"/run/netns/{pod.netns}" if netns is None else netns,
                "CNI_IFNAME": pod.ifname,
            }
        if pod.plan.network == "multus":
            env["CNI_ARGS"] = (
                f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod.name};K8S_POD_INFRA_CONTAINER_ID={pod.container_id}"
            )
        return env

    def _check_error_object(self, result: Call) -> None:
        self.checks["error_objects"] += 1
        answer = result.answer()
        if answer is None or not isinstance(answer.get("code"), int) or not answer.get("msg"):
            self.fail(f"not a spec error object: {result.describe()}")

    def _inject(self, proc: subprocess.Popen[bytes], pod: Pod, command: str, kill: str) -> bool:
        """SIGKILL the plugin, its launcher or its daemon worker partway through; True if it landed.

        A runtime restarting mid-ADD takes the process it exec'd with it (the plugin, or the
        launcher of a forwarded request): the same kill, seen from the runtime's side."""
        plan = pod.plan
        delay = plan.kill_at * self.typical_seconds(plan.mode, command)
        if kill == "kill_worker":
            landed = self._kill_worker(proc, delay)
        else:
            time.sleep(delay)
            landed = proc.poll() is None
            if landed:
                proc.kill()
        if landed:
            self.landed(kill, pod)
        else:
            with self.lock:
                self.observed[f"{kill}_missed"] += 1
        return landed

    def _kill_worker(self, proc: subprocess.Popen[bytes], delay: float) -> bool:
        daemon = self.node.daemon
        deadline = time.monotonic() + 10
        while daemon is not None and proc.poll() is None and time.monotonic() < deadline:
            worker = serving_worker(proc.pid, daemon.workers())
            if worker is not None:
                time.sleep(min(delay, 0.02))
                if proc.poll() is not None:
                    break
                if serving_worker(proc.pid, [worker]) != worker:
                    continue  # it finished that request meanwhile: do not kill another pod's
                with suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)
                    with self.lock:
                        self.worker_kill_gen += 1
                        self.worker_kills[daemon.epoch] += 1
                    return True
            time.sleep(0.001)
        return False

    # -- one pod --------------------------------------------------------------------------------
    def conf_for(self, pod: Pod, command: str, prev: dict[str, Any] | None = None) -> dict[str, Any]:
        net = self.node.networks[pod.plan.network]
        conf = dict(net.conf)
        if pod.plan.network == "sriov" and pod.vf:
            conf["deviceID"] = pod.vf.address
        elif pod.plan.network == "host-device" and pod.vf:
            conf["runtimeConfig"] = {"deviceID": pod.vf.address}
        elif pod.plan.network == "multus":
            conf["binDir"] = str(self.node.bin_dir(pod.plan.mode))
        if prev is not None and command == "CHECK":
            conf["prevResult"] = prev
        return conf

    def lifecycle(self, plan: PodPlan) -> None:
        if self.stop.is_set():
            return
        with self.lock:
            self.started += 1
        net = self.node.networks[plan.network]
        pod = Pod(plan, "", f"soak-{plan.index}-{uuid.uuid4().hex[:10]}", net.ifname)
        if plan.network in self.vf_pools:
            pod.vf = self.vf_pools[plan.network].get()
        try:
            pod.netns = self.node.add_pod_netns(plan.index)
            if plan.network == "multus":
                self._write_pod_manifest(pod)
            self._run(pod)
        finally:
            self.node.delete_pod_netns(pod.netns)
            if plan.network == "multus" and pod.name:
                (self.node.work / "manifests" / f"{pod.name}.json").unlink(missing_ok=True)
            if pod.vf is not None:
                self.vf_pools[plan.network].put(pod.vf)

    def _write_pod_manifest(self, pod: Pod) -> None:
        pod.name = f"soakpod{pod.plan.index}"
        networks = ["storage", "broken"] if pod.plan.fault == "delegate_failure" else ["storage"]
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod.name,
                "namespace": "default",
                "annotations": {"k8s.v1.cni.cncf.io/networks": ",".join(networks)},
            },
        }
        path = self.node.work / "manifests" / f"{pod.name}.json"
        tmp = path.with_suffix(".part")
        tmp.write_text(json.dumps(obj))
        tmp.rename(path)

    def _run(self, pod: Pod) -> None:
        plan = pod.plan
        with self.net_gates[plan.network].shared():
            with self.lock:
                self.live[plan.network].add(pod.container_id)
                self.live_pods[pod.container_id] = pod
            kill = plan.fault if plan.fault in ADD_KILLS else None
            add = self.call(pod, "ADD", self.conf_for(pod, "ADD"), kill if plan.kill_op == "ADD" else None)
            if plan.fault == "runtime_restart_add" and add.killed:
                add = self._after_runtime_restart(pod)
            add = self._retry_try_again(pod, add)
        result = add.answer() if add.ok else None
        if add.ok and result is not None:
            self._took_addresses(pod, result)
            if plan.check and not self.stop.is_set():
                self._check(pod, result)
            if plan.gc_after:
                self.gc(plan.network)
            if plan.lifetime:
                time.sleep(plan.lifetime)
        else:
            self._add_failed(pod, add)
        if plan.fault == "netns_gone":
            self.node.delete_pod_netns(pod.netns)
            self.landed("netns_gone", pod)
        self._delete(pod)

    def _after_runtime_restart(self, pod: Pod) -> Call:
        """The runtime is back from a restart that cut off its ADD: as containerd does on start,
        it DELs what the lost ADD may have made, then ADDs again with the same container ID."""
        self._delete_until_done(pod, None)
        return self.call(pod, "ADD", self.conf_for(pod, "ADD"))

    def _retry_try_again(self, pod: Pod, add: Call) -> Call:
        """An ADD answered "try again later" (code 11: a VF not back in the node yet, a lock
        whose holder is busy) is retried as kubelet does: DEL, then ADD again."""
        deadline = time.monotonic() + ADD_RETRY_DEADLINE
        while not add.ok and not add.killed and (add.answer() or {}).get("code") == 11:
            if time.monotonic() > deadline or self.stop.is_set():
                break
            with self.lock:
                self.observed["add_try_again_retried"] += 1
            self._delete_until_done(pod, None)
            time.sleep(0.1)  # kubelet's backoff before it retries the sandbox, not synchronisation
            add = self.call(pod, "ADD", self.conf_for(pod, "ADD"))
        return add

    def _took_addresses(self, pod: Pod, result: dict[str, Any]) -> None:
        self.checks["add_results"] += 1
        with self.lock:
            for entry in result.get("ips", []):
                ip = str(entry.get("address", "")).split("/")[0]
                holder = self.addresses.get(ip)
                if holder is not None and holder != pod.container_id:
                    self.duplicates.append(f"ADD gave {ip} to {pod.container_id} while {holder} holds it")
                self.addresses[ip] = pod.container_id

    def _check(self, pod: Pod, result: dict[str, Any]) -> None:
        check = self.call(pod, "CHECK", self.conf_for(pod, "CHECK", result))
        self.checks["check_after_add"] += 1
        if not check.ok and not check.excused:
            where = f"{pod.plan.network}, {pod.plan.mode}"
            self.fail(f"CHECK after a successful ADD failed ({where}): {check.describe()}")

    def _add_failed(self, pod: Pod, add: Call) -> None:
        self.observed["add_failed"] += 1
        msg = str((add.answer() or {}).get("msg", ""))
        if add.killed:
            return
        if pod.plan.fault == "delegate_failure":
            self.landed("delegate_failure", pod)
        elif pod.plan.network == "bridge-tiny" and "no IP addresses available" in msg:
            self.observed["ipam_exhausted"] += 1
        elif add.excused:
            self.observed["add_failed_node_fault"] += 1
        else:
            self.fail(
                f"ADD failed with no fault injected ({pod.plan.network}, {pod.plan.mode}): {add.describe()}"
            )

    def _delete(self, pod: Pod) -> None:
        """DEL until it succeeds (kubelet's behaviour), then the planned extra DELs.

        From the first DEL on the runtime has given the attachment up (its containers are
        gone): its addresses stop counting as held, and the sampler stops looking at the pod.
        """
        plan = pod.plan
        with self.lock:
            self.live_pods.pop(pod.container_id, None)
            for ip in [ip for ip, cid in self.addresses.items() if cid == pod.container_id]:
                del self.addresses[ip]
        kill = plan.fault if plan.fault in ("kill_plugin_del", "kill_launcher", "kill_worker") else None
        first_kill = kill if plan.kill_op == "DEL" else None
        if plan.concurrent_del or plan.fault == "double_del":
            self._two_dels_at_once(pod, runtime_shaped=plan.fault == "double_del")
        if plan.fault == "del_empty_netns":
            self._delete_until_done(pod, None, netns="")
            self.node.delete_pod_netns(pod.netns)  # the runtime removes the netns after its DEL
            self.landed("del_empty_netns", pod)
        self._delete_until_done(pod, first_kill)
        for _ in range(plan.repeat_del):
            again = self.call(pod, "DEL", self.conf_for(pod, "DEL"))
            self.checks["repeated_del"] += 1
            if not again.ok:
                self._unfaulted_del_failure(pod, again, "a repeated DEL")
                self._delete_until_done(pod, None)
        with self.lock:
            self.live[plan.network].discard(pod.container_id)
            self.finished.add(pod.container_id)

    def _two_dels_at_once(self, pod: Pod, runtime_shaped: bool) -> None:
        """Two DELs of the attachment at once: identical, or as containerd sends them when a
        sandbox stops (the second with CNI_NETNS empty). Both must succeed."""
        netns = [None, ""] if runtime_shaped else [None, None]
        conf = self.conf_for(pod, "DEL")
        with ThreadPoolExecutor(2) as pool:
            racing = list(pool.map(lambda ns: self.call(pod, "DEL", conf, netns=ns), netns))
        self.observed["concurrent_del"] += 1
        if runtime_shaped:
            self.landed("double_del", pod)
        for c in racing:
            self.checks["concurrent_del"] += 1
            self._unfaulted_del_failure(pod, c, "one of two concurrent DELs")

    def _unfaulted_del_failure(self, pod: Pod, result: Call, what: str) -> None:
        """A DEL may fail when it was killed, or under a node-wide fault, or with "try again
        later" (code 11: the runtime retries); otherwise DEL must succeed."""
        if result.ok or result.killed or result.excused:
            return
        if (result.answer() or {}).get("code") == 11:
            self.observed["del_try_again"] += 1
            return
        self.fail(
            f"{what} failed with no fault injected ({pod.plan.network}, {pod.plan.mode}): {result.describe()}"
        )

    def _delete_until_done(self, pod: Pod, kill: str | None, netns: str | None = None) -> None:
        deadline = time.monotonic() + DEL_DEADLINE
        attempt = 0
        while True:
            first_kill = kill if attempt == 0 else None
            result = self.call(pod, "DEL", self.conf_for(pod, "DEL"), first_kill, netns=netns)
            if result.ok:
                return
            attempt += 1
            self.observed["del_retries"] += 1
            self._unfaulted_del_failure(pod, result, "DEL")
            if time.monotonic() > deadline or (self.stop.is_set() and attempt > 3):
                self.fail(
                    f"DEL of {pod.container_id} ({pod.plan.network}) never succeeded: {result.describe()}"
                )
                return
            time.sleep(min(0.05 * 2**attempt, 1.0))

    # -- GC ---------------------------------------------------------------------------------------
    def gc(self, network: str, final: bool = False) -> None:
        """GC of one network with the attachments the runtime holds (none at the end)."""
        net = self.node.networks[network]
        with self.net_gates[network].exclusive():
            with self.lock:
                valid = [{"containerID": cid, "ifname": net.ifname} for cid in sorted(self.live[network])]
            conf = {**net.conf, "cni.dev/valid-attachments": [] if final else valid}
            if network == "multus":
                conf["binDir"] = str(self.node.bin_dir("exec-python"))
            gc_pod = Pod(
                PodPlan(-1, network, "daemon-native", False, 0, False, False, None, "ADD", 0, 0), "", "", ""
            )
            for attempt in range(20):
                result = self.call(gc_pod, "GC", conf)
                self.checks["gc"] += 1
                if result.ok:
                    return
                if not result.excused and attempt == 0:
                    self.fail(f"GC of {network} failed: {result.describe()}")
                time.sleep(0.2)
            self.fail(f"GC of {network} never succeeded")

    # -- node-wide faults and sampling ----------------------------------------------------------
    def chaos(self, events: list[NodeEvent]) -> None:
        for event in events:
            while not self.stop.is_set() and self.started < event.after:
                time.sleep(0.02)
            if self.stop.is_set():
                return
            try:
                if event.kind == "store_readonly":
                    self._readonly(event.hold)
                else:
                    self.restart_daemon(event.busy)
            except Exception as exc:
                self.fail(f"node fault {event.kind} could not be injected: {type(exc).__name__}: {exc}")

    def _readonly(self, hold: float) -> None:
        with self.lock:
            self.readonly = True
            self.node_fault_gen += 1
        try:
            if self.node.set_store_readonly(True):
                self.faults["store_readonly"] += 1
                time.sleep(hold)
            else:
                self.observed["store_readonly_busy"] += 1
        finally:
            self.node.set_store_readonly(False)
            with self.lock:
                self.readonly = False
                self.node_fault_gen += 1

    def restart_daemon(self, busy: bool) -> None:
        """A restart at a quiet point (its counters read exactly) or under load (drained)."""
        if busy:
            with self.lock:
                self.node_fault_gen += 1
            self._stop_daemon(exact=False)
            self.node.start_daemon()
            with self.lock:
                self.node_fault_gen += 1
        else:
            with self.restart_gate.exclusive():
                self._stop_daemon(exact=True)
                self.node.start_daemon()
        self.faults["daemon_restart"] += 1

    def _stop_daemon(self, exact: bool) -> None:
        daemon = self.node.daemon
        assert daemon is not None
        stats: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with suppress(Exception):
                stats = daemon.status()
                if not exact or (stats["busy"] == 0 and stats["queued"] == 0):
                    break
            time.sleep(0.01)
        self.epoch_stats.append((daemon.epoch, stats, exact))
        daemon.stop()
        self.node.daemon = None

    def sample(self) -> None:
        """Every half second: no two pods hold one address, no reservation outlives its DEL."""
        while not self.stop.wait(0.5):
            with self.lock:
                done = set(self.finished)
                pods = list(self.live_pods.values())
            for key, (owner, ifname) in reservations(self.node.ipam_dir).items():
                if owner in done:
                    self.fail(f"address {key} still reserved by {owner}/{ifname} after its DEL succeeded")
            held = {pod.container_id: pod_addresses(f"/run/netns/{pod.netns}") for pod in pods}
            with self.lock:
                # The pods are read one after another: one whose DEL began meanwhile may have
                # handed its address on between the two reads. A pod still live now was live
                # (its address its own) through every read after its own; pods never come back.
                still_live = set(self.live_pods)
            seen: dict[str, str] = {}
            for owner, ips in held.items():
                if owner not in still_live:
                    continue
                for ip in ips:
                    if ip in seen and seen[ip] != owner:
                        with self.lock:
                            self.duplicates.append(f"{ip} in the pods of {seen[ip]} and {owner} at once")
                    seen[ip] = owner
            self.checks["samples"] += 1

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> None:
        sampler = threading.Thread(target=self.sample, daemon=True)
        chaos = threading.Thread(target=self.chaos, args=(list(self.schedule.events),), daemon=True)
        sampler.start()
        chaos.start()
        pool = ThreadPoolExecutor(self.options.concurrency)
        try:
            futures = [pool.submit(self.lifecycle, p) for p in self.schedule.pods]
            for done, future in enumerate(futures, 1):
                try:
                    future.result()
                except Aborted:
                    raise
                except Exception as exc:  # a harness error: report it, keep the rest going
                    self.fail(f"lifecycle {done - 1} raised {type(exc).__name__}: {exc}")
                if self.log and done % 100 == 0:
                    print(f"  {done} lifecycles", file=sys.stderr, flush=True)
            chaos.join()
        except BaseException:
            self.abort()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            self.stop.set()
            sampler.join()
        if self.node.nic is not None:
            wait_until(self.node.nic.all_back, timeout=60, what="every VF netdev back from dead netns")
        for network in self.node.networks:
            self.gc(network, final=True)
        self._stop_daemon(exact=True)

    def abort(self) -> None:
        """Ctrl-C: stop starting work and kill what runs, so cleanup can proceed."""
        self.stop.set()
        self.aborted.set()
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            with suppress(ProcessLookupError):
                proc.kill()


def serving_worker(launcher: int, workers: list[int]) -> int | None:
    """The daemon worker holding the other end of `launcher`'s connection to the daemon."""
    from pyroute2 import DiagSocket

    mine = _socket_inodes(launcher)
    if not mine or not workers:
        return None
    with DiagSocket() as diag:
        diag.bind()
        peers = {
            s.get_attr("UNIX_DIAG_PEER")
            for s in diag.get_sock_stats(family=socket.AF_UNIX)
            if s["udiag_ino"] in mine
        }
    peers.discard(None)
    for worker in workers:
        if _socket_inodes(worker) & peers:
            return worker
    return None


def _socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets `pid` holds open."""
    out: set[int] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def final_checks(soak: Soak, report: SoakReport, links_before: dict[str, tuple[str, int]]) -> None:
    node = soak.node
    leaks = leaked_files(node) + leaked_links(node) + leaked_fdb() + leaked_rules()
    report.checks.update(leaks=1, links=1, fdb=1, rules=1)
    locks, bound = lock_files(node), lock_file_bound(node)
    report.observed["lock_files"] = locks
    if locks > bound:
        kinds = Counter(name.split("-")[0] for name in os.listdir(node.work / "run" / "locks"))
        leaks.append(
            f"{locks} lock files under run/locks, more than the {bound} shared resources need: {dict(kinds)}"
        )
    leaks += vf_state(node)
    after = vf_links_snapshot(node) if not any("not back" in f for f in leaks) else {}
    for name, before in links_before.items():
        if after and after.get(name) != before:
            leaks.append(f"VF netdev {name} was {before}, now {after.get(name)}")
    report.checks["vfs"] = len(links_before)
    report.leaks += leaks
    runs = request_log(node)
    report.checks["requests_logged"] = len(runs)
    for request, places in runs.items():
        if len(places) > 1:
            report.failures.append(f"request {request} ran {len(places)} times: {places}")
    for request in soak.answered:
        if request not in runs:
            report.failures.append(f"request {request} was answered but never ran")
    started = epoch_runs(runs)
    for epoch, stats, exact in soak.epoch_stats:
        if not stats:
            report.failures.append(f"daemon {epoch}: no counters could be read")
            continue
        report.failures += daemon_balance(epoch, stats, started[f"D{epoch}"], soak.worker_kills[epoch], exact)
        report.checks["daemon_counters"] = report.checks.get("daemon_counters", 0) + 1
    report.daemon = {
        "runs": len(soak.epoch_stats),
        "requests": sum(s.get("requests", 0) for _, s, _ in soak.epoch_stats),
        "worker_restarts": sum(s.get("worker_restarts", 0) for _, s, _ in soak.epoch_stats),
        "abandoned": sum(s.get("abandoned", 0) for _, s, _ in soak.epoch_stats),
        "ran_in_daemon": sum(started.values()),
        "ran_in_process": sum(1 for places in runs.values() for p in places if p == "F"),
    }


def _latency(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50": 0.0, "p99": 0.0, "n": 0}
    return {"p50": percentile(samples, 50) * 1000, "p99": percentile(samples, 99) * 1000, "n": len(samples)}


def soak_here(options: SoakOptions, log: bool = True) -> SoakReport:
    """The soak in this process, which must be single-threaded, root, and free to change namespace."""
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**32)
    if log:
        print(f"soak: seed {seed}", file=sys.stderr, flush=True)
    schedule = plan_schedule(seed, options.lifecycles, options.faults)
    report = SoakReport(seed, options.lifecycles, options.concurrency, options.faults)
    node = Node(workers=options.workers, vfs=options.vfs)
    started = time.perf_counter()
    soak: Soak | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        node.open()
        links_before = vf_links_snapshot(node)
        soak = Soak(options, schedule, node, log)
        try:
            soak.run()
        except BaseException:
            soak.abort()
            raise
        report.faults = {k: soak.faults[k] for k in FAULT_KINDS}
        report.faults_by_type = dict(sorted(soak.faults_by_type.items()))
        report.checks = dict(soak.checks)
        report.observed = dict(soak.observed)
        if node.nic is not None:
            report.observed["vf_netdevs_returned"] = sum(node.nic.returned.values())
        report.failures = list(soak.failures)
        report.duplicates = list(soak.duplicates)
        report.latency_ms = {k: _latency(v) for k, v in soak.latency.items()}
        for (mode, command), samples in sorted(soak.typical.items()):
            if command in soak.latency:
                report.latency_ms[f"{command} {mode}"] = _latency(samples)
        for (command, fault), samples in sorted(soak.latency_by_fault.items()):
            report.latency_ms[f"{command} fault={fault}"] = _latency(samples)
        final_checks(soak, report, links_before)
    finally:
        report.wall_s = time.perf_counter() - started
        node.close()
        signal.signal(signal.SIGTERM, previous)
    return report


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_soak(options: SoakOptions) -> SoakReport:
    """The soak in a child process (it enters namespaces of its own); its report."""
    with tempfile.TemporaryDirectory(prefix="pycni-soak-report-") as tmp:
        out = Path(tmp) / "report.json"
        argv = [
            sys.executable,
            "-m",
            "tests.helpers.soak",
            *options_argv(options),
            "--report-file",
            str(out),
            "--quiet",
        ]
        log = Path(tmp) / "stderr"
        with log.open("wb") as err:
            proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
            try:
                proc.wait()
            except BaseException:  # a test timeout or Ctrl-C: let the soak remove what it made
                proc.terminate()
                proc.wait(120)
                raise
        if not out.exists():
            seed = options.seed if options.seed is not None else -1
            report = SoakReport(seed, options.lifecycles, options.concurrency, options.faults)
            stderr = log.read_text(errors="replace")[-3000:]
            report.failures.append(f"the soak exited {proc.returncode} without a report: {stderr}")
            return report
        return SoakReport.from_json(json.loads(out.read_text()))


def options_argv(options: SoakOptions) -> list[str]:
    argv = [
        f"--lifecycles={options.lifecycles}",
        f"--concurrency={options.concurrency}",
        f"--workers={options.workers}",
        f"--vfs={options.vfs}",
    ]
    if options.faults:
        argv.append("--faults")
    if options.seed is not None:
        argv.append(f"--seed={options.seed}")
    return argv

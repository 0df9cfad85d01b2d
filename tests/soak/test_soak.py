"""The soak (bench/soak.py) as a test: a short run with every fault, and seeded replay.

The long run (`python bench/soak.py --lifecycles 5000 --concurrency 16 --faults`) is the
release check; this one keeps the harness and the invariants it proves working in CI.
`PYCNI_SOAK_SEED` replays a failing seed.
"""

from __future__ import annotations

import os

import pytest

from bench.soak import SoakOptions, options_argv, run_soak
from bench.soak_plan import FAULT_KINDS, MOVED_DEVICE, NETWORKS, POD_FAULTS, plan_schedule

pytestmark = pytest.mark.soak


def _seed() -> int | None:
    value = os.environ.get("PYCNI_SOAK_SEED", "")
    return int(value) if value else None


@pytest.mark.netns
def test_a_short_soak_with_faults_keeps_every_invariant() -> None:
    if os.geteuid() != 0:
        pytest.skip("the soak builds namespaces: root only")
    report = run_soak(SoakOptions(lifecycles=200, concurrency=8, faults=True, seed=_seed()))
    replay = f"(replay: PYCNI_SOAK_SEED={report.seed})"
    assert report.failures == [], f"{replay} {report.failures[:5]}"
    assert report.duplicates == [], f"{replay} {report.duplicates[:5]}"
    assert report.leaks == [], f"{replay} {report.leaks[:5]}"
    missing = [kind for kind in FAULT_KINDS if report.faults.get(kind, 0) == 0]
    assert missing == [], f"{replay} fault kinds never injected: {missing} ({report.faults})"
    # the invariants were looked at, not just found empty
    for check in ("add_results", "samples", "requests_logged", "daemon_counters", "gc", "leaks", "vfs"):
        assert report.checks.get(check, 0) > 0, f"{replay} check {check} never ran: {report.checks}"
    assert report.latency_ms["ADD"]["n"] > 0
    assert report.latency_ms["DEL"]["n"] > 0


def test_a_seed_replays_the_same_schedule() -> None:
    first, again = plan_schedule(4242, 300, faults=True), plan_schedule(4242, 300, faults=True)
    assert first == again
    assert first.to_json() == again.to_json()
    assert plan_schedule(4243, 300, faults=True) != first
    assert {p.network for p in first.pods} == set(NETWORKS)
    assert {p.fault for p in first.pods} - {None} == set(POD_FAULTS)
    assert {e.kind for e in first.events} == set(FAULT_KINDS) - set(POD_FAULTS)
    # a moved device's veth stand-in cannot survive a kill or a dead netns the way a NIC would
    assert not [p for p in first.pods if p.network in MOVED_DEVICE and p.fault]


def test_without_faults_the_schedule_has_none() -> None:
    schedule = plan_schedule(7, 100, faults=False)
    assert all(p.fault is None for p in schedule.pods)
    assert schedule.events == ()


def test_the_child_process_is_given_the_same_options() -> None:
    argv = options_argv(SoakOptions(lifecycles=12, concurrency=3, faults=True, seed=99, workers=2, vfs=4))
    assert argv == ["--lifecycles=12", "--concurrency=3", "--workers=2", "--vfs=4", "--faults", "--seed=99"]

"""The soak (tests/helpers/soak, `bench/soak.py`) as a test: a short run with every fault, and seeded replay.

The long run (`python bench/soak.py --lifecycles 5000 --concurrency 16 --faults`) is the
release check; this one keeps the harness and the invariants it proves working in CI.
`PYCNI_SOAK_SEED` replays a failing seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.soak.checks import daemon_balance, epoch_runs, request_log
from tests.helpers.soak.node import Node
from tests.helpers.soak.plan import (
    FAULT_KINDS,
    KILLS,
    MOVED_DEVICE,
    NETWORKS,
    POD_FAULTS,
    fault_targets,
    plan_schedule,
)
from tests.helpers.soak.run import SoakOptions, options_argv, run_soak

pytestmark = pytest.mark.soak


def _seed() -> int | None:
    value = os.environ.get("PYCNI_SOAK_SEED", "")
    return int(value) if value else None


@pytest.mark.netns
@pytest.mark.timeout(900)  # ~2 minutes on an idle 2-core machine; far more when it is shared
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
    by_type = report.faults_by_type
    for moved in MOVED_DEVICE:  # devices moved into pods take kills and dead netns too
        kills = sum(by_type.get(f"{kind} {moved}", 0) for kind in KILLS)
        assert kills > 0, f"{replay} no kill landed on a {moved} pod: {by_type}"
        assert by_type.get(f"netns_gone {moved}", 0) > 0, f"{replay} no {moved} pod lost its netns: {by_type}"
    assert report.observed.get("vf_netdevs_returned", 0) > 0, f"{replay} the fake NIC never returned a VF"
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
    # every pod fault is planned on every plugin type it applies to (the fake NIC returns VFs)
    assert set(fault_targets()) <= {(p.fault, p.network) for p in first.pods if p.fault}


def test_without_faults_the_schedule_has_none() -> None:
    schedule = plan_schedule(7, 100, faults=False)
    assert all(p.fault is None for p in schedule.pods)
    assert schedule.events == ()


def test_the_child_process_is_given_the_same_options() -> None:
    argv = options_argv(SoakOptions(lifecycles=12, concurrency=3, faults=True, seed=99, workers=2, vfs=4))
    assert argv == ["--lifecycles=12", "--concurrency=3", "--workers=2", "--vfs=4", "--faults", "--seed=99"]


def test_the_daemon_balance_catches_a_request_run_without_being_counted() -> None:
    stats = {
        "requests": 10,
        "errors": 3,
        "worker_restarts": 1,
        "refused": {},
        "latency": {"bridge ADD": {"requests": 6, "errors": 1}, "bridge DEL": {"requests": 4, "errors": 1}},
    }
    # 10 finished + 1 lost with its killed worker: 10 or 11 started is balanced, 12 is not
    assert daemon_balance(1, stats, started=11, kills=1, exact=True) == []
    assert daemon_balance(1, stats, started=10, kills=1, exact=True) == []
    assert daemon_balance(1, stats, started=12, kills=1, exact=True) != []
    assert daemon_balance(1, stats, started=9, kills=1, exact=True) != []
    assert daemon_balance(1, stats, started=11, kills=0, exact=True) != []
    # read before a restart under load: the counters may trail, never lead
    assert daemon_balance(1, stats, started=30, kills=0, exact=False) == []
    assert daemon_balance(1, stats, started=9, kills=0, exact=False) != []


def test_the_request_log_shows_a_request_that_ran_twice(tmp_path: Path) -> None:
    node = Node(work=tmp_path)
    node.run_log.write_text("F a.ADD.1\nD1 b.ADD.2\nD1 c.DEL.3\nF c.DEL.3\nD2 d.ADD.4\n")
    runs = request_log(node)
    assert [r for r, places in runs.items() if len(places) > 1] == ["c.DEL.3"]
    assert epoch_runs(runs) == {"D1": 2, "D2": 1}

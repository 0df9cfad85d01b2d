"""The benches' throw-away netns go away when a bench is stopped, also by SIGTERM or SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from bench.common import remove_orphans
from tests.helpers.poll import wait_until

REPO = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from bench.common import node_with_pods
with node_with_pods(sys.argv[1], 2):
    print("up", flush=True)
    time.sleep(60)
"""


def netns_of(prefix: str) -> list[str]:
    directory = Path("/run/netns")
    return [n for n in os.listdir(directory) if n.startswith(prefix)] if directory.exists() else []


def hold(prefix: str) -> subprocess.Popen[str]:
    bench = subprocess.Popen(
        [sys.executable, "-c", HOLD, prefix], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert bench.stdout is not None and bench.stdout.readline() == "up\n"
        assert len([n for n in netns_of(prefix) if f"{bench.pid}-" in n]) == 3
    except BaseException:
        bench.terminate()
        bench.wait(30)
        raise
    return bench


def test_a_bench_stopped_by_sigterm_removes_its_netns() -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}"
    bench = hold(prefix)
    bench.send_signal(signal.SIGTERM)
    bench.wait(30)
    assert netns_of(prefix) == []


def test_the_netns_of_a_killed_bench_are_removed_by_the_next_and_a_live_ones_are_not() -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}"
    dead, live = hold(prefix), hold(prefix)
    try:
        dead.kill()
        dead.wait(30)
        assert len(netns_of(prefix)) == 6
        remove_orphans(prefix)
        wait_until(lambda: len(netns_of(prefix)) == 3, what="the killed bench's netns to go")
        assert {n.split("-")[0][len(prefix) + 1 :] for n in netns_of(prefix)} == {str(live.pid)}
    finally:
        live.send_signal(signal.SIGTERM)
        live.wait(30)
    assert netns_of(prefix) == []

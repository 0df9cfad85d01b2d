"""What a daemon worker spends on one bridge + host-local lifecycle (ADD then DEL), in-process.

Wall-clock time on a shared machine says little, so this measures what load does not change:

- CPU per lifecycle (user + sys of this process, `getrusage`) over `--lifecycles` lifecycles;
- with `--instructions`, the user-space instructions per lifecycle, counted by valgrind's
  callgrind: the script runs itself under callgrind twice (`--base` and `--base + --lifecycles`
  lifecycles) and prints the difference divided by `--lifecycles`, so start-up, imports and the
  preload cancel out. The kernel's side (netlink, veth creation) is not counted: it is the same
  for every implementation;
- with `--profile`, cProfile's view of the same lifecycles (cumulative and own time).

Run as root: `.venv/bin/python bench/hotpath_bench.py [--lifecycles 200] [--instructions] [--profile]`.
It enters a throw-away node netns; each pod gets its own netns.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import node_with_pods


def conf(data_dir: Path) -> bytes:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "hotpath",
            "type": "bridge",
            "bridge": "cnihot0",
            "isGateway": True,
            "ipam": {
                "type": "host-local",
                "dataDir": str(data_dir),
                "ranges": [[{"subnet": "10.199.0.0/16"}]],
            },
        }
    ).encode()


def lifecycles(pods: list[str], data_dir: Path) -> None:
    """ADD then DEL of each pod, as a worker runs them (`registry.run`, no socket)."""
    from pycni import registry

    config = conf(data_dir)
    for pod in pods:
        env = {
            "CNI_CONTAINERID": pod,
            "CNI_NETNS": f"/run/netns/{pod}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/",
        }
        for command in ("ADD", "DEL"):
            out = io.StringIO()
            code = registry.run("bridge", {**env, "CNI_COMMAND": command}, io.BytesIO(config), out)
            if code != 0:
                raise RuntimeError(f"{command} failed: {out.getvalue()}")


def cpu_seconds() -> tuple[float, float]:
    """(user, sys) seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def measure(args: argparse.Namespace) -> None:
    from pycni.daemon.preload import preload

    preload()
    with node_with_pods("hp", args.lifecycles + 3) as pods, tempfile.TemporaryDirectory(prefix="hpb") as tmp:
        lifecycles(pods[:3], Path(tmp))  # warm-up: the bridge, the page cache
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
            lifecycles(pods[3:], Path(tmp))
            prof.disable()
            stats = pstats.Stats(prof, stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(40)
            return
        user0, sys0 = cpu_seconds()
        lifecycles(pods[3:], Path(tmp))
        user1, sys1 = cpu_seconds()
    if not args.quiet:
        user, system = ((b - a) / args.lifecycles * 1000 for a, b in ((user0, user1), (sys0, sys1)))
        total = user + system
        print(f"CPU per lifecycle, in-process: user {user:.3f} ms + sys {system:.3f} ms = {total:.3f} ms")


def instructions(lifecycles_count: int) -> int:
    """User-space instructions of a run of this script with `lifecycles_count` lifecycles."""
    with tempfile.TemporaryDirectory(prefix="hpcg") as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--lifecycles",
                str(lifecycles_count),
                "--quiet",
            ],
            check=True,
            capture_output=True,
        )
        summary = re.search(rb"^summary:\s+(\d+)", out.read_bytes(), re.MULTILINE)
        if summary is None:
            raise RuntimeError("callgrind wrote no summary")
        return int(summary.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lifecycles", type=int, default=200)
    parser.add_argument("--base", type=int, default=5, help="lifecycles of the baseline run (--instructions)")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--profile", action="store_true", help="cProfile the lifecycles")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    if args.instructions:
        base = instructions(args.base)
        more = instructions(args.base + args.lifecycles)
        print(f"instructions per lifecycle (callgrind, user space): {(more - base) / args.lifecycles:,.0f}")
        return 0
    measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the fuzz suite (`pytest -m fuzz`) with a large example budget and report the counts per parser.

CI runs every fuzz test with the default budget (`PYCNI_FUZZ_EXAMPLES`, a few hundred examples);
this runs them with `--examples` each (10,000 by default) and prints, per test, how many inputs
hypothesis generated and how many passed, from its own statistics. The exit code is pytest's, and
a test that ran fewer examples than asked (hypothesis stops early when a strategy is exhausted) is
reported as such rather than counted as the full budget.

    python bench/fuzz.py --examples 10000 [--json] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_TEST_HEADER = re.compile(r"^(\S+::\S+):$")
_COUNTS = re.compile(r"- (\d+) passing, (\d+) failing, and (\d+) invalid test cases")
_STOPPED = re.compile(r"- Stopped because (.+)$")


@dataclass
class FuzzCount:
    """One fuzz test's inputs over every hypothesis phase."""

    test: str
    passing: int = 0
    failing: int = 0
    invalid: int = 0
    stopped_because: str = ""

    @property
    def inputs(self) -> int:
        return self.passing + self.failing + self.invalid


def parse_statistics(output: str) -> list[FuzzCount]:
    """The per-test counts from pytest's `--hypothesis-show-statistics` section."""
    counts: list[FuzzCount] = []
    current: FuzzCount | None = None
    for line in output.splitlines():
        stripped = line.strip()
        header = _TEST_HEADER.match(stripped)
        if header:
            current = FuzzCount(header.group(1))
            counts.append(current)
            continue
        if current is None:
            continue
        found = _COUNTS.search(stripped)
        if found:
            current.passing += int(found.group(1))
            current.failing += int(found.group(2))
            current.invalid += int(found.group(3))
        stopped = _STOPPED.search(stripped)
        if stopped:
            current.stopped_because = stopped.group(1)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=10_000, help="examples per fuzz test")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, e.g. a test path")
    args = parser.parse_args(argv)

    env = dict(os.environ, PYCNI_FUZZ_EXAMPLES=str(args.examples))
    command = [sys.executable, "-m", "pytest", "-m", "fuzz", "-q", "-p", "no:cacheprovider"]
    command += ["--hypothesis-show-statistics", "--timeout=0", "-n", str(args.workers), *args.pytest_args]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    counts = parse_statistics(proc.stdout)
    if proc.returncode != 0 or not counts:
        sys.stdout.write(proc.stdout[-20_000:])
        sys.stderr.write(proc.stderr[-5_000:])
    _report(counts, args.examples, elapsed, as_json=args.json)
    if not counts:
        print("no fuzz test ran", file=sys.stderr)
        return proc.returncode or 1
    return proc.returncode


def _report(counts: list[FuzzCount], budget: int, elapsed: float, *, as_json: bool) -> None:
    if as_json:
        rows = [asdict(c) | {"inputs": c.inputs} for c in counts]
        print(json.dumps({"budget": budget, "seconds": round(elapsed, 1), "tests": rows}, indent=2))
        return
    width = max((len(c.test) for c in counts), default=10)
    print(f"{'fuzz test':<{width}}  {'inputs':>8}  {'passing':>8}  {'failing':>7}  {'invalid':>7}")
    for c in counts:
        note = "" if c.passing >= budget else f"  (stopped: {c.stopped_because})"
        print(f"{c.test:<{width}}  {c.inputs:>8}  {c.passing:>8}  {c.failing:>7}  {c.invalid:>7}{note}")
    total = sum(c.inputs for c in counts)
    print(f"{len(counts)} fuzz tests, {total} inputs in {elapsed:.0f} s (budget {budget} per test)")


if __name__ == "__main__":
    sys.exit(main())

"""The soak's command line (`python bench/soak.py ...`, or `python -m tests.helpers.soak ...`).

`run.run_soak` runs the soak in a child process through this, with `--report-file`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tests.helpers.soak.plan import fault_targets
from tests.helpers.soak.run import SoakOptions, SoakReport, soak_here


def print_fault_matrix(report: SoakReport) -> None:
    """Pod faults that landed, by kind (rows) and plugin type (columns); '-' where it does not apply."""
    targets = fault_targets()
    networks = list(dict.fromkeys(n for _, n in targets))
    print("pod faults landed per type:")
    print(f"  {'':<20}" + "".join(f"{n:>12}" for n in networks))
    for kind in dict.fromkeys(k for k, _ in targets):
        cells = [
            f"{report.faults_by_type.get(f'{kind} {n}', 0):>12}" if (kind, n) in targets else f"{'-':>12}"
            for n in networks
        ]
        print(f"  {kind:<20}" + "".join(cells))


def print_report(report: SoakReport) -> None:
    lat = report.latency_ms
    print(
        f"soak: seed {report.seed}, {report.lifecycles} lifecycles at concurrency {report.concurrency}, "
        f"faults {'on' if report.faults_enabled else 'off'}, {report.wall_s:.1f} s"
    )
    print("faults injected: " + ", ".join(f"{k} {v}" for k, v in report.faults.items()))
    if report.faults_by_type:
        print_fault_matrix(report)
    print("invariant checks: " + ", ".join(f"{k} {v}" for k, v in sorted(report.checks.items())))
    print("observed: " + ", ".join(f"{k} {v}" for k, v in sorted(report.observed.items())))
    for op in sorted(lat):
        if op.split()[0] in ("ADD", "DEL"):
            p50, p99, n = lat[op]["p50"], lat[op]["p99"], lat[op]["n"]
            under = " under faults" if report.faults_enabled else ""
            print(f"{op} latency{under}: p50 {p50:.1f} ms, p99 {p99:.1f} ms (n={n:.0f})")
    print(f"daemon: {report.daemon}")
    counts = (len(report.leaks), len(report.duplicates), len(report.failures))
    print("leaks: {}   duplicate IPs: {}   failures: {}".format(*counts))
    for title, findings in (
        ("failures", report.failures),
        ("duplicates", report.duplicates),
        ("leaks", report.leaks),
    ):
        for finding in findings[:20]:
            print(f"  {title[:-1]}: {finding}")
    if not report.ok:
        print(f"FAILED (seed {report.seed}): {report.first_failure()}")
        faults = " --faults" if report.faults_enabled else ""
        size = f"--lifecycles {report.lifecycles} --concurrency {report.concurrency}"
        print(f"replay: python bench/soak.py {size}{faults} --seed {report.seed}")


def main() -> int:
    parser = argparse.ArgumentParser(description="randomized pod lifecycles with faults, invariants checked")
    parser.add_argument("--lifecycles", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--faults", action="store_true", help="inject faults (see soak/plan.py)")
    parser.add_argument("--seed", type=int, help="replay this seed's schedule")
    parser.add_argument("--workers", type=int, default=4, help="daemon workers")
    parser.add_argument(
        "--vfs", type=int, default=8, help="VFs of the fake NIC (half sriov, half host-device)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--report-file", type=Path, help="also write the JSON report here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    options = SoakOptions(args.lifecycles, args.concurrency, args.faults, args.seed, args.workers, args.vfs)
    try:
        report = soak_here(options, log=not args.quiet)
    except KeyboardInterrupt:
        print("soak: interrupted; everything it created is removed", file=sys.stderr)
        return 130
    data = report.to_json()
    if args.report_file:
        args.report_file.write_text(json.dumps(data, indent=2))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_report(report)
    if not report.ok:
        print(f"soak FAILED, seed {report.seed}: {report.first_failure()}", file=sys.stderr)
    return 0 if report.ok else 1

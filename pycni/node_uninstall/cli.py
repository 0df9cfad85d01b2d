"""`pycni uninstall --node [options]`: run on a node being rolled back to the reference plugins."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pycni.cni.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pycni uninstall",
        description="Convert this node's pycni state so the reference plugins' DEL finishes every pod.",
    )
    p.add_argument("--node", action="store_true", required=True, help="this node's state (the only scope)")
    p.add_argument(
        "--cache-dir",
        action="append",
        default=None,
        help="a libcni cache dir whose results/ name the attachments (repeatable; default "
        "/var/lib/cni and /var/lib/cni/multus)",
    )
    p.add_argument(
        "--multus-cni-dir",
        action="append",
        default=None,
        help="multus cniDir holding pod plans (repeatable; default /var/lib/cni/multus)",
    )
    p.add_argument(
        "--masquerade-to-iptables",
        action="store_true",
        help="move masquerade rules from nftables to iptables (for reference plugins before v1.5)",
    )
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pycni.node_uninstall import devices, plans, rules

    settings = Settings.from_env(os.environ)
    caches = [Path(d) for d in (args.cache_dir or ["/var/lib/cni", "/var/lib/cni/multus"])]
    report: list[str] = []
    cached = devices.result_caches(caches)
    devices.host_device(settings, report)
    devices.sriov(settings, cached, report)
    for directory in args.multus_cni_dir or ["/var/lib/cni/multus"]:
        plans.rewrite(Path(directory), report)
    rules.earlier_masquerade(settings.run_dir, cached, report)
    if args.masquerade_to_iptables:
        rules.nftables_to_iptables(settings.run_dir, cached, report)
    for line in report:
        print(line)
    print(f"pycni uninstall: node state converted ({len(report)} changes)", file=sys.stderr)
    return 0

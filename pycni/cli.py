"""The `pycni` command: install, exec, and the node daemons. Subcommands import lazily."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _install(args: argparse.Namespace) -> int:
    from pycni.install import InstallError, install

    types = args.types.split(",") if args.types else None
    try:
        done = install(
            Path(args.bin_dir),
            types,
            force=args.force,
            launcher=args.launcher,
            cc=os.environ.get("CC") or None,
            daemon_only=args.daemon_only,
        )
    except InstallError as err:
        print(f"pycni install: {err}", file=sys.stderr)
        return 1
    if done.note:
        print(f"pycni install: {done.note}")
    for item in done.items:
        print(f"{'installed' if item.changed else 'unchanged'} {item.kind} {item.path}")
    return 0


def _exec(args: argparse.Namespace) -> int:
    from pycni.cni.errors import to_error
    from pycni.cni.settings import Settings
    from pycni.libcni import tool
    from pycni.libcni.delegate import AutoDelegate, ExecDelegate
    from pycni.registry import lookup

    cni_path = args.cni_path or os.environ.get("CNI_PATH", "/opt/cni/bin")
    req = tool.ExecOptions(
        conf_path=Path(args.conf),
        netns=args.netns or "",
        ifname=args.ifname,
        container_id=args.container_id or "",
        cni_path=tuple(filter(None, cni_path.split(":"))),
        cni_args=args.args or "",
        capability_args=json.loads(args.capability_args) if args.capability_args else {},
        cache_dir=Path(args.cache_dir),
    )
    settings = Settings.from_env(os.environ)
    delegate = ExecDelegate() if args.exec_plugins else AutoDelegate(lookup, settings)
    try:
        result = tool.run(args.command, req, delegate)
    except Exception as exc:
        print(json.dumps(to_error(exc).to_json()))
        return 1
    if result is not None:
        print(tool.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pycni", description="CNI plugins and node daemons")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("install", help="write the plugin executables into a CNI bin directory")
    p.add_argument("--bin-dir", required=True, help="e.g. /opt/cni/bin")
    p.add_argument("--types", help="comma-separated plugin types (default: all)")
    p.add_argument("--force", action="store_true", help="replace files pycni did not write")
    p.add_argument(
        "--launcher",
        choices=["auto", "native", "python"],
        default="auto",
        help="native: a compiled forwarder to the daemon (needs a C compiler, $CC or cc); "
        "python: the interpreter launcher; auto (default): native when a compiler works",
    )
    p.add_argument(
        "--daemon-only",
        action="store_true",
        help="native forwarders without the Python fallback, for a host that lacks this interpreter "
        "(the daemon runs elsewhere, e.g. in the CNI DaemonSet's pod): 'try again later' when it is down",
    )
    p.set_defaults(func=_install)

    p = sub.add_parser("exec", help="run a network config against a netns, like a runtime")
    p.add_argument("command", choices=["add", "check", "del", "status", "gc"])
    p.add_argument("--conf", required=True, help="a .conf or .conflist file")
    p.add_argument("--netns", help="netns path, or a name under /run/netns")
    p.add_argument("--ifname", default="eth0")
    p.add_argument("--container-id")
    p.add_argument("--cni-path", help="plugin search path (default $CNI_PATH or /opt/cni/bin)")
    p.add_argument("--args", help="CNI_ARGS, K=V;K2=V2")
    p.add_argument("--capability-args", help="JSON object of capability arguments")
    p.add_argument("--cache-dir", default="/var/lib/cni")
    p.add_argument("--exec-plugins", action="store_true", help="exec every plugin, even our own")
    p.set_defaults(func=_exec)

    for name, (_, text) in DAEMONS.items():  # listed for --help; `main` hands them their argv
        sub.add_parser(name, help=text, add_help=False)
    return parser


DAEMONS = {
    "daemon": ("pycni.daemon.cli", "run the node daemon that serves CNI requests"),
    "device-plugin": ("pycni.device_plugin.cli", "run the SR-IOV kubelet device plugin"),
    "dra-driver": ("pycni.dra.cli", "run the SR-IOV DRA driver (ResourceSlices, kubelet DRA plugin)"),
    "node-install": ("pycni.node_install.cli", "install onto a node from the CNI DaemonSet"),
    "uninstall": ("pycni.node_uninstall.cli", "hand this node's pods to the reference plugins (--node)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DAEMONS:
        import importlib

        code: int = importlib.import_module(DAEMONS[argv[0]][0]).main(argv[1:])
        return code
    args = build_parser().parse_args(argv)
    code = args.func(args)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())

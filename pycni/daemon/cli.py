"""`pycni daemon`: serve CNI requests in the foreground, or report on the one that does."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pycni.cni.env_names import DAEMON_SOCKET
from pycni.cni.settings import Settings

DEFAULT_METRICS_ADDRESS = "127.0.0.1:9161"
#: Pod lifecycles the warm-up runs (`daemon.warmup`): CPython 3.11 specialises a code object
#: after its eighth call.
DEFAULT_WARM_UP_CYCLES = 8


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycni daemon", description=__doc__)
    p.add_argument(
        "--socket",
        default=Settings.from_env(os.environ).daemon_socket,
        help=f"Unix socket path (default ${DAEMON_SOCKET} or {Settings().daemon_socket})",
    )
    p.add_argument("--status", action="store_true", help="print a running daemon's counters and exit")
    p.add_argument(
        "--workers",
        type=int,
        default=max(8, 2 * (os.cpu_count() or 1)),
        help="worker processes, i.e. requests served at once (default max(8, 2 x CPUs))",
    )
    p.add_argument(
        "--warm-up",
        type=int,
        default=DEFAULT_WARM_UP_CYCLES,
        metavar="CYCLES",
        help=f"pod lifecycles run in scratch namespaces before the workers fork "
        f"(0: none; default {DEFAULT_WARM_UP_CYCLES})",
    )
    p.add_argument("--queue", type=int, default=128, help="callers waiting for a worker before refusing")
    p.add_argument("--request-timeout", type=float, default=60.0, help="seconds one request may run")
    p.add_argument(
        "--metrics-address",
        default=DEFAULT_METRICS_ADDRESS,
        help="HOST:PORT of /metrics, /healthz and /readyz ('' to serve none)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds in-flight requests get to finish after SIGTERM",
    )
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.status:
        return _status(args.socket)
    if args.workers < 1 or args.queue < 0 or args.request_timeout <= 0 or args.warm_up < 0:
        print(
            "pycni daemon: --workers must be >= 1, --queue >= 0, --request-timeout > 0, --warm-up >= 0",
            file=sys.stderr,
        )
        return 2
    return serve(args)


def _status(path: str) -> int:
    from pycni.daemon.client import NoDaemon, status

    try:
        stats = status(path)
    except NoDaemon as err:
        print(f"pycni daemon: {err}", file=sys.stderr)
        return 1
    print(json.dumps(stats, indent=2))
    return 0


def serve(args: argparse.Namespace) -> int:
    from pycni.cni.logs import setup_logging
    from pycni.daemon.listener import ListenerError, listen
    from pycni.daemon.preload import preload
    from pycni.daemon.supervisor import Supervisor, SupervisorOptions

    setup_logging(Settings.from_env(os.environ))
    os.chdir("/")
    preload(args.warm_up)
    options = SupervisorOptions(
        Path(args.socket),
        args.workers,
        args.queue,
        args.request_timeout,
        args.drain_timeout,
        args.metrics_address,
    )
    try:
        listener = listen(options.socket_path)
    except (ListenerError, OSError) as err:
        print(f"pycni daemon: {err}", file=sys.stderr)
        return 1
    try:
        supervisor = Supervisor(options, listener)
    except (OSError, ValueError) as err:
        print(f"pycni daemon: cannot serve metrics on {args.metrics_address!r}: {err}", file=sys.stderr)
        listener.close()
        return 1
    try:
        return supervisor.run()
    finally:
        listener.close()

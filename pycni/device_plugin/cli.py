"""`pycni device-plugin`: command-line parsing and logging; the process's life (signals, endpoint, start, run)
is `pycni.k8s.service_main`'s, the rest the service's.

Exit codes: 0 after a clean SIGTERM/SIGINT shutdown, 2 for an invalid config file (the message
names the entry and the reason), 1 when the service cannot start.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pycni.cni.logs import setup_json_logging
from pycni.device_plugin.cdi import CDI_DIR
from pycni.device_plugin.options import Options
from pycni.hw.devinfo import DP_DIR
from pycni.k8s.paths import DEVICE_PLUGINS_DIR, KUBELET_SOCKET, PLUGINS_REGISTRY_DIR, POD_RESOURCES_SOCKET
from pycni.k8s.pools.config import DEFAULT_PREFIX, ConfigError, load_config, warn_unsupported

log = logging.getLogger("pycni.device_plugin")

DEFAULT_METRICS_ADDRESS = "127.0.0.1:9162"
#: How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms). The
#: server's threads (8 gRPC workers, the event loop, health streams) each run for well under a
#: millisecond between system calls; with the default, an Allocate back from a write waited out
#: another thread's 5 ms. With 32 calls in flight (bench/device_plugin_bench.py, machine load ~25)
#: Allocate's median in the server went from 1.0-1.6 ms to 0.23-0.35 ms, its p99 from 8-15 ms to 7.5-9 ms.
GIL_SWITCH_INTERVAL = 0.0005
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pycni device-plugin", description="SR-IOV / PCI NIC device plugin for kubelet"
    )
    p.add_argument(
        "--config", required=True, type=Path, help="resource pool config (sriov-network-device-plugin format)"
    )
    p.add_argument("--resource-prefix", default=DEFAULT_PREFIX, help="default prefix of resource names")
    p.add_argument("--sysfs-root", default=Path("/sys"), type=Path)
    p.add_argument(
        "--kubelet-dir",
        default=DEVICE_PLUGINS_DIR,
        type=Path,
        help=f"the directory holding {KUBELET_SOCKET}",
    )
    p.add_argument(
        "--plugins-registry-dir",
        default=PLUGINS_REGISTRY_DIR,
        type=Path,
        help="plugin-watcher directory; used instead of Register when it exists",
    )
    p.add_argument("--device-info-dir", default=DP_DIR, type=Path)
    p.add_argument("--cdi-dir", default=CDI_DIR, type=Path)
    p.add_argument(
        "--use-cdi", action="store_true", help="answer Allocate with CDI devices and write CDI specs"
    )
    p.add_argument(
        "--links-netns", default=None, help="network namespace holding the node's netdevs (default: our own)"
    )
    p.add_argument("--no-udev", action="store_true", help="do not listen for kernel uevents")
    p.add_argument(
        "--pod-resources-socket",
        default=str(POD_RESOURCES_SOCKET),
        help="the kubelet's pod-resources API, read at start for the devices pods hold ('' to not read it)",
    )
    p.add_argument(
        "--metrics-address",
        default=DEFAULT_METRICS_ADDRESS,
        help="HOST:PORT of /metrics, /healthz and /readyz ('' to serve none)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    setup_json_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        config = load_config(args.config, args.resource_prefix)
    except ConfigError as err:
        log.error("invalid config", extra={"error": str(err)})
        print(f"pycni device-plugin: invalid config: {err}", file=sys.stderr)
        return EXIT_CONFIG
    warn_unsupported(config)

    # grpc and pyroute2 load only once the config is known to be good
    from pycni.device_plugin.service import DevicePluginService

    opts = Options(
        config_path=args.config.absolute(),
        resource_prefix=args.resource_prefix,
        sysfs_root=args.sysfs_root,
        kubelet_dir=args.kubelet_dir,
        plugins_registry_dir=args.plugins_registry_dir,
        devinfo_dir=args.device_info_dir,
        cdi_dir=args.cdi_dir,
        use_cdi=args.use_cdi,
        links_netns=args.links_netns,
        use_udev=not args.no_udev,
        pod_resources_socket=Path(args.pod_resources_socket) if args.pod_resources_socket else None,
    )
    from pycni.k8s.service_main import run_service

    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    return run_service(DevicePluginService(opts, config), args.metrics_address)

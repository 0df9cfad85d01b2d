"""`pycni dra-driver`: command-line parsing and logging; the process's life (signals, endpoint, start, run) is
`pycni.k8s.service_main`'s, the rest the service's.

Exit codes: 0 after a clean SIGTERM/SIGINT shutdown, 2 for an invalid config file or argument (the
message names it), 1 when the service cannot start.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pycni.cni.env_names import DEFAULT_SYSFS_ROOT, SYSFS_ROOT
from pycni.cni.logs import setup_json_logging
from pycni.dra.devices import config_problems
from pycni.dra.options import CDI_DIR, DEFAULT_DRIVER, Options
from pycni.k8s.apiserver import IN_CLUSTER
from pycni.k8s.objects import is_dns_subdomain
from pycni.k8s.paths import PLUGINS_DIR, PLUGINS_REGISTRY_DIR
from pycni.k8s.pools.config import DEFAULT_PREFIX, ConfigError, PluginConfig, load_config, warn_unsupported
from pycni.k8s.pools.membership import pools_of

log = logging.getLogger("pycni.dra")

DEFAULT_METRICS_ADDRESS = "127.0.0.1:9163"
NODE_NAME_ENV = "NODE_NAME"
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycni dra-driver", description="DRA driver for SR-IOV VFs")
    p.add_argument(
        "--config",
        required=True,
        type=Path,
        help="the device plugin's config.json: each matching device is published",
    )
    p.add_argument("--driver-name", default=DEFAULT_DRIVER, help="the DRA driver name (a DNS subdomain)")
    p.add_argument("--node-name", default=None, help=f"this node's name (default: ${NODE_NAME_ENV})")
    p.add_argument("--kubeconfig", default=IN_CLUSTER, help=f"a kubeconfig file, or '{IN_CLUSTER}'")
    p.add_argument("--resource-prefix", default=DEFAULT_PREFIX, help="default prefix of resource names")
    p.add_argument("--plugins-dir", default=PLUGINS_DIR, type=Path, help="kubelet's plugins directory")
    p.add_argument(
        "--registry-dir", default=PLUGINS_REGISTRY_DIR, type=Path, help="kubelet's plugin registry"
    )
    p.add_argument("--cdi-dir", default=CDI_DIR, type=Path, help="where container runtimes read CDI specs")
    p.add_argument(
        "--sysfs-root",
        default=Path(os.environ.get(SYSFS_ROOT) or DEFAULT_SYSFS_ROOT),
        type=Path,
        help=f"the sysfs tree (default: ${SYSFS_ROOT}, else {DEFAULT_SYSFS_ROOT})",
    )
    p.add_argument(
        "--links-netns", default=None, help="network namespace holding the node's netdevs (default: our own)"
    )
    p.add_argument("--no-udev", action="store_true", help="do not listen for kernel uevents")
    p.add_argument(
        "--metrics-address",
        default=DEFAULT_METRICS_ADDRESS,
        help="HOST:PORT of /metrics, /healthz and /readyz ('' to serve none)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def options(args: argparse.Namespace, env: dict[str, str]) -> Options:
    """The options the arguments ask for; ConfigError names an argument that cannot work."""
    node = args.node_name or env.get(NODE_NAME_ENV, "")
    if not is_dns_subdomain(node):
        raise ConfigError(
            f"node name {node!r} (--node-name or ${NODE_NAME_ENV}) is not a Kubernetes node name"
        )
    if not is_dns_subdomain(args.driver_name):
        raise ConfigError(f"driver name {args.driver_name!r} is not a DNS subdomain such as {DEFAULT_DRIVER}")
    return Options(
        config_path=args.config.absolute(),
        node_name=node,
        driver_name=args.driver_name,
        kubeconfig=args.kubeconfig,
        env=env,
        resource_prefix=args.resource_prefix,
        plugins_dir=args.plugins_dir.absolute(),
        registry_dir=args.registry_dir.absolute(),
        cdi_dir=args.cdi_dir.absolute(),
        sysfs_root=args.sysfs_root,
        links_netns=args.links_netns,
        use_udev=not args.no_udev,
    )


def load(opts: Options) -> PluginConfig:
    config = load_config(opts.config_path, opts.resource_prefix)
    problems = config_problems(pools_of(config, opts.resource_prefix))
    if problems:
        raise ConfigError(f"{opts.config_path}: " + "; ".join(problems))
    return config


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    setup_json_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        opts = options(args, dict(os.environ))
        config = load(opts)
    except ConfigError as err:
        log.error("invalid configuration", extra={"error": str(err)})
        print(f"pycni dra-driver: {err}", file=sys.stderr)
        return EXIT_CONFIG
    warn_unsupported(config)

    # grpc, lightkube and pyroute2 load only once the configuration is known to be good
    from pycni.dra.service import DraDriverService
    from pycni.k8s.service_main import run_service

    log.info("starting", extra={"driver": opts.driver_name, "node": opts.node_name})
    return run_service(DraDriverService(opts, config), args.metrics_address)

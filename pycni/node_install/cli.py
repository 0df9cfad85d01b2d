"""`pycni node-install`: flags named like the multus thin entrypoint's where they mean the same."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from pycni.node_install import primary
from pycni.node_install.kubeconfig import SERVICE_ACCOUNT_DIR
from pycni.node_install.run import BinaryInstaller, Installer, InstallerOptions, check

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pycni node-install", description=__doc__)
    add = p.add_argument
    add("--cni-bin-dir", type=Path, default=Path("/host/opt/cni/bin"), help="host CNI bin dir, as mounted")
    add("--additional-bin-dir", type=Path, help="also install the executables here")
    add("--skip-multus-binary-copy", action="store_true", help="do not install executables")
    add("--forwarders-dir", type=Path, help="prebuilt executables to copy (the image's); default: build them")
    add(
        "--existing",
        choices=["keep", "replace"],
        default="keep",
        help="a same-named executable pycni did not write (e.g. the reference bridge): keep it "
        "(its configs are compatible) or replace it",
    )
    add(
        "--cni-conf-dir", type=Path, default=Path("/host/etc/cni/net.d"), help="host CNI conf dir, as mounted"
    )
    add("--multus-autoconfig-dir", type=Path, help="where the primary config is (default: --cni-conf-dir)")
    add("--multus-conf-file", default="auto", help="'auto' to generate from the primary, or a file to copy")
    add("--multus-master-cni-file-name", default="", help="the primary config's file name (default: first)")
    add("--cni-conf-dir-host", type=Path, default=Path("/etc/cni/net.d"), help="the conf dir's host path")
    add("--cni-bin-dir-host", default="/opt/cni/bin", help="the bin dir's host path")
    add(
        "--multus-kubeconfig-file-host",
        default="/etc/cni/net.d/multus.d/multus.kubeconfig",
        help="the kubeconfig's host path, written into the config",
    )
    add("--no-kubeconfig", action="store_true", help="write no kubeconfig (a manifests-only node)")
    add("--multus-cni-dir", default="/var/lib/cni/multus", help="multus's state dir (its cniDir)")
    add(
        "--multus-manifests-dir",
        default="",
        help="with --no-kubeconfig: the directory of Pod and NAD manifests multus reads (its manifests)",
    )
    add("--service-account-dir", type=Path, default=SERVICE_ACCOUNT_DIR, help="the pod's token and CA")
    add("--cni-version", default="", help="the config's cniVersion (default: the primary's)")
    add("--override-network-name", action="store_true", help="name the config like the primary network")
    add("--namespace-isolation", action="store_true")
    add("--global-namespaces", default="")
    add("--multus-log-level", default="")
    add("--multus-log-file", default="")
    add("--multus-log-to-stderr", choices=["true", "false"])
    add("--readiness-indicator-file", type=Path, help="wait for this file before writing the config")
    add("--cleanup-config-on-exit", action="store_true", help="remove the config and kubeconfig on exit")
    add("--skip-config-watch", action="store_true", help="write once and exit")
    add("--poll-interval", type=float, default=1.0, help="seconds between checks of the watched files")
    add("--check", action="store_true", help="exit 0 when the config is in place (a readiness probe)")
    return p


def options(args: argparse.Namespace) -> InstallerOptions:
    bin_dirs = () if args.skip_multus_binary_copy else (args.cni_bin_dir,)
    if args.additional_bin_dir and not args.skip_multus_binary_copy:
        bin_dirs += (args.additional_bin_dir,)
    multus = primary.MultusOptions(
        conf_dir_host=args.cni_conf_dir_host,
        kubeconfig_host="" if args.no_kubeconfig else args.multus_kubeconfig_file_host,
        bin_dir_host=args.cni_bin_dir_host,
        cni_dir=args.multus_cni_dir,
        manifests=args.multus_manifests_dir if args.no_kubeconfig else "",
        cni_version=args.cni_version,
        override_network_name=args.override_network_name,
        namespace_isolation=args.namespace_isolation,
        global_namespaces=args.global_namespaces,
        readiness_indicator_file=str(args.readiness_indicator_file or ""),
        log_level=args.multus_log_level,
        log_file=args.multus_log_file,
        log_to_stderr=None if args.multus_log_to_stderr is None else args.multus_log_to_stderr == "true",
    )
    return InstallerOptions(
        bin_dirs=bin_dirs,
        conf_dir=args.cni_conf_dir,
        autoconfig_dir=args.multus_autoconfig_dir or args.cni_conf_dir,
        multus=multus,
        multus_conf_file=args.multus_conf_file,
        master_cni_file_name=args.multus_master_cni_file_name,
        write_kubeconfig=not args.no_kubeconfig,
        readiness_indicator_file=args.readiness_indicator_file,
        cleanup_on_exit=args.cleanup_config_on_exit,
        watch=not args.skip_config_watch,
        poll_interval=args.poll_interval,
        service_account_dir=args.service_account_dir,
    )


def install_binaries(replace_foreign: bool, prebuilt: Path | None = None) -> BinaryInstaller:
    """Every type into a directory, as daemon-only forwarders (the host has no interpreter of ours).

    `prebuilt`: copy the forwarders built into the image (its runtime stage has no compiler);
    else build them here. A foreign file of the same name is kept unless replacing.
    """
    from pycni.install import install, install_prebuilt, is_ours
    from pycni.registry import PLUGINS

    def run(bin_dir: Path) -> None:
        types = [t for t in PLUGINS if replace_foreign or not (bin_dir / t).exists() or is_ours(bin_dir / t)]
        for kept in sorted(set(PLUGINS) - set(types)):
            log.warning("keeping %s: pycni did not write it (--existing=replace replaces it)", bin_dir / kept)
        if prebuilt is not None:
            install_prebuilt(bin_dir, prebuilt, types, force=replace_foreign)
        else:
            install(bin_dir, types, force=replace_foreign, launcher="native", daemon_only=True)

    return run


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.check:
        return 0 if check(args.cni_conf_dir) else 1
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    binaries = install_binaries(args.existing == "replace", args.forwarders_dir)
    installer = Installer(options(args), os.environ, binaries)
    return installer.run(stop)

"""`pycni node-install` against a temporary host root: install, re-install under a reader,
primary-config changes, token rotation, readiness indicator, cleanup on exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pycni import install as install_mod
from pycni.node_install import primary
from pycni.node_install.cli import install_binaries
from pycni.node_install.run import Installer, InstallerOptions
from pycni.registry import PLUGINS
from tests.helpers.poll import wait_until

ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
FLANNEL: dict[str, Any] = {
    "name": "cbr0",
    "cniVersion": "0.3.1",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True, "other": False}},
    ],
}


class Host:
    """A node's CNI directories and a pod's service account, under one temporary root."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "opt/cni/bin"
        self.conf = root / "etc/cni/net.d"
        self.sa = root / "sa"
        for d in (self.bin, self.conf, self.sa):
            d.mkdir(parents=True)
        self.rotate_token("token-1")
        (self.sa / "ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

    def rotate_token(self, token: str) -> None:
        (self.sa / "token").write_text(token)

    def write_primary(self, name: str, doc: Mapping[str, Any]) -> Path:
        path = self.conf / name
        path.write_text(json.dumps(doc))
        return path

    @property
    def multus_conf(self) -> Path:
        return self.conf / primary.MULTUS_CONF_NAME

    @property
    def kubeconfig(self) -> Path:
        return self.conf / "multus.d" / "multus.kubeconfig"

    def options(self, **overrides: object) -> InstallerOptions:
        base: dict[str, object] = {
            "bin_dirs": (self.bin,),
            "conf_dir": self.conf,
            "autoconfig_dir": self.conf,
            "multus": primary.MultusOptions(kubeconfig_host="/etc/cni/net.d/multus.d/multus.kubeconfig"),
            "service_account_dir": self.sa,
            "poll_interval": 0.02,
        }
        return InstallerOptions(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def forwarders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Daemon-only forwarders built once, as the image's build stage does."""
    directory = tmp_path_factory.mktemp("forwarders")
    install_mod.install(directory, launcher="native", daemon_only=True)
    return directory


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


@pytest.fixture
def running(host: Host, forwarders: Path) -> Iterator[tuple[Installer, threading.Event]]:
    """An installer watching `host` in a thread; stopped (and cleaned up) after the test."""
    host.write_primary("10-flannel.conflist", FLANNEL)
    installer = Installer(host.options(cleanup_on_exit=True), ENV, install_binaries(False, forwarders))
    stop = threading.Event()
    thread = threading.Thread(target=installer.run, args=(stop,))
    thread.start()
    try:
        wait_until(host.multus_conf.exists, what="the first config")
        yield installer, stop
    finally:
        stop.set()
        thread.join(30)


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def test_first_install_writes_executables_config_and_kubeconfig(host: Host, forwarders: Path) -> None:
    host.write_primary("10-flannel.conflist", FLANNEL)
    host.write_primary("99-other.conf", {"cniVersion": "1.0.0", "name": "other", "type": "bridge"})
    Installer(host.options(watch=False), ENV, install_binaries(False, forwarders)).run(threading.Event())
    assert sorted(p.name for p in host.bin.iterdir()) == sorted(PLUGINS)  # and no Python fallbacks
    assert all((host.bin / t).read_bytes() == (forwarders / t).read_bytes() for t in PLUGINS)
    conf = read_json(host.multus_conf)
    assert conf["cniVersion"] == "0.3.1" and conf["name"] == "multus-cni-network"
    (plugin,) = conf["plugins"]
    assert plugin["type"] == "multus"
    assert plugin["clusterNetwork"] == "/etc/cni/net.d/10-flannel.conflist"  # the host path
    assert plugin["capabilities"] == {"bandwidth": True, "portMappings": True}
    assert plugin["kubeconfig"] == "/etc/cni/net.d/multus.d/multus.kubeconfig"
    kube = read_json(host.kubeconfig)
    assert kube["clusters"][0]["cluster"]["server"] == "https://10.96.0.1:443"
    assert kube["users"][0]["user"]["token"] == "token-1"
    assert oct(host.kubeconfig.stat().st_mode & 0o777) == "0o600"


def test_primary_is_the_first_valid_config_by_name_and_never_our_own(host: Host) -> None:
    host.write_primary("00-multus.conflist", {"name": "multus-cni-network", "plugins": [{"type": "multus"}]})
    host.write_primary("05-broken.conf", {"cniVersion": "1.0.0"})  # no name: libcni skips it
    (host.conf / "07-notes.txt").write_text("not a config")
    host.write_primary(
        "10-calico.conflist",
        {"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [{"type": "calico"}]},
    )
    host.write_primary("20-flannel.conflist", FLANNEL)
    found = primary.find_primary(host.conf)
    assert found is not None and found.path.name == "10-calico.conflist" and found.capabilities == {}
    chosen = primary.find_primary(host.conf, master="20-flannel.conflist")
    assert chosen is not None and chosen.name == "cbr0"


def test_a_foreign_executable_is_kept_unless_replacing(host: Host, forwarders: Path) -> None:
    reference = host.bin / "bridge"
    reference.write_bytes(b"\x7fELF reference bridge")
    install_binaries(False, forwarders)(host.bin)
    assert reference.read_bytes() == b"\x7fELF reference bridge"
    assert install_mod.is_ours(host.bin / "multus")
    install_binaries(True, forwarders)(host.bin)
    assert install_mod.is_ours(reference)


def test_reinstall_never_shows_a_missing_or_partial_executable(
    host: Host, forwarders: Path, tmp_path: Path
) -> None:
    """A reader polls every executable while the installer rewrites them from two builds."""
    builds = [tmp_path / "a", tmp_path / "b"]
    for build in builds:
        build.mkdir()
        for t in PLUGINS:  # b's files are longer: a torn write would show as a mixed length
            (build / t).write_bytes(
                (forwarders / t).read_bytes() + (b"" if build.name == "a" else b"\0" * 65536)
            )
    allowed = {t: {(b / t).read_bytes() for b in builds} for t in PLUGINS}
    install_binaries(False, builds[0])(host.bin)
    done = threading.Event()
    seen: list[str] = []
    sizes: set[int] = set()

    def reader() -> None:
        while not done.is_set():
            for name, contents in allowed.items():
                try:
                    data = (host.bin / name).read_bytes()
                except FileNotFoundError:
                    seen.append(f"{name}: missing")
                    continue
                if data not in contents:
                    seen.append(f"{name}: {len(data)} bytes")
                sizes.add(len(data) - len((forwarders / name).read_bytes()))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for turn in range(1, 31):
            install_binaries(False, builds[turn % 2])(host.bin)
    finally:
        done.set()
        thread.join()
    assert seen == []
    assert sizes == {0, 65536}  # the reader really overlapped the rewrites
    assert not [p for p in host.bin.iterdir() if p.name.startswith(".")]  # no temp file left


def test_primary_change_is_picked_up(host: Host, running: tuple[Installer, threading.Event]) -> None:
    host.write_primary("10-flannel.conflist", {**FLANNEL, "cniVersion": "1.0.0"})
    wait_until(lambda: read_json(host.multus_conf)["cniVersion"] == "1.0.0", what="the new cniVersion")
    host.write_primary(
        "01-cilium.conflist", {"cniVersion": "1.1.0", "name": "cilium", "plugins": [{"type": "cilium-cni"}]}
    )
    wait_until(lambda: "01-cilium" in json.dumps(read_json(host.multus_conf)), what="the new primary")


def test_token_rotation_rewrites_the_kubeconfig(
    host: Host, running: tuple[Installer, threading.Event]
) -> None:
    host.rotate_token("token-2")
    wait_until(
        lambda: read_json(host.kubeconfig)["users"][0]["user"]["token"] == "token-2",
        what="the rotated token",
    )


def test_cleanup_on_exit_removes_what_it_wrote(
    host: Host, running: tuple[Installer, threading.Event]
) -> None:
    _, stop = running
    stop.set()
    wait_until(lambda: not host.multus_conf.exists() and not host.kubeconfig.exists(), what="cleanup")
    assert (host.conf / "10-flannel.conflist").exists()  # the primary is not ours
    assert (host.bin / "multus").exists()  # DEL of existing pods still needs the executables


def test_no_config_before_the_readiness_indicator(host: Host, forwarders: Path) -> None:
    host.write_primary("10-flannel.conflist", FLANNEL)
    indicator = host.conf / "flannel-ready"
    installer = Installer(
        host.options(readiness_indicator_file=indicator), ENV, install_binaries(False, forwarders)
    )
    stop = threading.Event()
    thread = threading.Thread(target=installer.run, args=(stop,))
    thread.start()
    try:
        wait_until((host.bin / "multus").exists, what="the executables")
        assert not host.multus_conf.exists()
        indicator.touch()
        wait_until(host.multus_conf.exists, what="the config after the indicator")
    finally:
        stop.set()
        thread.join(30)


def test_the_command_line_installs_and_cleans_up_on_sigterm(host: Host, forwarders: Path) -> None:
    host.write_primary("10-flannel.conflist", FLANNEL)
    argv = [
        sys.executable,
        "-m",
        "pycni",
        "node-install",
        f"--cni-bin-dir={host.bin}",
        f"--forwarders-dir={forwarders}",
        f"--cni-conf-dir={host.conf}",
        f"--service-account-dir={host.sa}",
        "--cleanup-config-on-exit",
        "--poll-interval=0.05",
    ]
    proc = subprocess.Popen(argv, env={**os.environ, **ENV}, stderr=subprocess.PIPE)
    try:
        wait_until(host.multus_conf.exists, timeout=60, what="the config")
        check = [sys.executable, "-m", "pycni", "node-install", "--check", f"--cni-conf-dir={host.conf}"]
        assert subprocess.run(check, check=False).returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not host.multus_conf.exists() and not host.kubeconfig.exists()
    assert subprocess.run(check, check=False).returncode == 1


def test_a_manifests_node_gets_its_manifests_dir_and_cni_dir_and_no_kubeconfig(tmp_path: Path) -> None:
    from pycni.node_install.cli import build_parser, options

    args = build_parser().parse_args(
        [
            "--no-kubeconfig",
            "--multus-manifests-dir=/srv/manifests",
            "--multus-cni-dir=/var/lib/pycni/multus",
        ]
    )
    opts = options(args).multus
    found = primary.PrimaryConfig(tmp_path / "10-net.conflist", "net", "1.0.0", {})
    (plugin,) = primary.multus_conflist(found, opts)["plugins"]
    assert plugin["manifests"] == "/srv/manifests" and plugin["cniDir"] == "/var/lib/pycni/multus"
    assert "kubeconfig" not in plugin
    with_api = options(build_parser().parse_args(["--multus-manifests-dir=/srv/manifests"])).multus
    (plugin,) = primary.multus_conflist(found, with_api)["plugins"]
    assert "manifests" not in plugin and plugin["kubeconfig"], "a node with an API server reads it"

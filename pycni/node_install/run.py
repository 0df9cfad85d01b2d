"""The installer's loop: install, publish, watch, and clean up on exit.

Order matters on a booting node (multus#1155, #1312): executables first, then, once the
readiness indicator exists (when one is named) and a primary network is configured, the
kubeconfig and only then the meta-plugin config, so kubelet never sees a config whose plugin
or credentials are missing. An unchanged file is never rewritten. If the primary config goes
away the last good meta-plugin config stays: DEL of existing pods keeps working from the
meta-plugin's own records, and ADD fails with a clear error until a primary returns.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pycni.cni.files import write_atomic
from pycni.node_install import kubeconfig, primary

log = logging.getLogger(__name__)

KUBECONFIG_SUBPATH = Path("multus.d") / "multus.kubeconfig"

#: Installs the executables into one directory (atomically per file).
BinaryInstaller = Callable[[Path], None]


@dataclass(frozen=True)
class InstallerOptions:
    bin_dirs: tuple[Path, ...]
    conf_dir: Path
    autoconfig_dir: Path
    multus: primary.MultusOptions
    #: "auto" generates the config from the primary; anything else is a file to copy as is.
    multus_conf_file: str = "auto"
    master_cni_file_name: str = ""
    write_kubeconfig: bool = True
    readiness_indicator_file: Path | None = None
    cleanup_on_exit: bool = False
    watch: bool = True
    poll_interval: float = 1.0
    service_account_dir: Path = kubeconfig.SERVICE_ACCOUNT_DIR


@dataclass
class Installer:
    opts: InstallerOptions
    env: Mapping[str, str]
    install_binaries: BinaryInstaller
    #: Content of each file we wrote, so cleanup removes ours and never a successor's.
    written: dict[Path, bytes] = field(default_factory=dict)

    @property
    def kubeconfig_path(self) -> Path:
        return self.opts.conf_dir / KUBECONFIG_SUBPATH

    def install(self) -> None:
        for directory in self.opts.bin_dirs:
            self.install_binaries(directory)
            log.info("executables installed in %s", directory)

    def sync(self) -> bool:
        """One pass: refresh what changed; True once the meta-plugin config is in place."""
        if self.opts.multus_conf_file != "auto":
            source = Path(self.opts.multus_conf_file)
            self._publish(self.opts.conf_dir / source.name, source.read_bytes(), 0o644)
            return True
        found = primary.find_primary(self.opts.autoconfig_dir, master=self.opts.master_cni_file_name)
        if found is None:
            log.warning("no primary CNI config in %s yet", self.opts.autoconfig_dir)
            return (self.opts.conf_dir / primary.MULTUS_CONF_NAME) in self.written
        if self.opts.write_kubeconfig:
            account = kubeconfig.ServiceAccount.read(self.env, self.opts.service_account_dir)
            self._publish(self.kubeconfig_path, kubeconfig.render(account), 0o600)
        doc = primary.multus_conflist(found, self.opts.multus)
        self._publish(self.opts.conf_dir / primary.MULTUS_CONF_NAME, _dumps(doc), 0o644)
        return True

    def _publish(self, path: Path, data: bytes, mode: int) -> None:
        try:
            if path.read_bytes() == data:
                self.written[path] = data
                return
        except FileNotFoundError:
            pass
        write_atomic(path, data, mode)
        self.written[path] = data
        log.info("wrote %s", path)

    def wait_for_indicator(self, stop: threading.Event) -> bool:
        """Wait for the readiness indicator file; False when stopped first."""
        indicator = self.opts.readiness_indicator_file
        while indicator is not None and not indicator.exists():
            log.info("waiting for the readiness indicator %s", indicator)
            if stop.wait(self.opts.poll_interval):
                return False
        return True

    def run(self, stop: threading.Event) -> int:
        self.install()
        if not self.wait_for_indicator(stop):
            return 0
        while True:
            self.sync()
            if not self.opts.watch or stop.wait(self.opts.poll_interval):
                break
        if self.opts.watch and self.opts.cleanup_on_exit:
            self.cleanup()
        return 0

    def cleanup(self) -> None:
        """Remove the config and kubeconfig we wrote (not the executables: DEL still needs them)."""
        for path, data in self.written.items():
            try:
                if path.read_bytes() == data:
                    path.unlink()
                    log.info("removed %s", path)
            except FileNotFoundError:
                continue
        self.written.clear()


def _dumps(doc: object) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode()


def check(conf_dir: Path) -> bool:
    """The readiness probe: a meta-plugin config is in place and parses."""
    try:
        return bool(json.loads((conf_dir / primary.MULTUS_CONF_NAME).read_bytes()).get("plugins"))
    except (OSError, ValueError):
        return False

"""A `pycni daemon` in a child process for tests: started, awaited, stopped, always reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycni.daemon.client import NoDaemon, status
from pycni.daemon.native import Compiler, compile_forwarder, find_compiler
from pycni.install import fallback_path, import_paths
from tests.helpers.poll import wait_until

REPO = Path(__file__).resolve().parents[2]

PROBE_LAUNCHER = """#!{python} -IS
# pycni-launcher type=probe (test)
import sys
sys.path[:0] = {paths!r}
from pycni.registry import PLUGINS
from tests.daemon.probe_plugin import PROBE
PLUGINS["probe"] = PROBE
from pycni.daemon.launcher import {entry}
{entry}("probe")
"""


def install_probe(bin_dir: Path, native: bool = False) -> None:
    """An executable for the probe type, which `pycni install` does not know about.

    `native`: the forwarder built for "probe", with its Python fallback beside it, as
    `pycni install --launcher native` lays out a real type.
    """
    target = bin_dir / "probe"
    paths = [str(REPO), *import_paths()]
    if not native:
        target.write_text(PROBE_LAUNCHER.format(python=sys.executable, paths=paths, entry="main"))
        target.chmod(0o755)
        return
    fallback = fallback_path(bin_dir, "probe")
    fallback.parent.mkdir(exist_ok=True)
    fallback.write_text(PROBE_LAUNCHER.format(python=sys.executable, paths=paths, entry="run_here"))
    fallback.chmod(0o755)
    marker = "# pycni-launcher type=probe (test)"
    target.write_bytes(compile_forwarder(native_compiler(), "probe", fallback, marker))
    target.chmod(0o755)


def native_compiler() -> Compiler:
    """The compiler `pycni install` would use; the native tests cannot run without one."""
    compiler, why_not = find_compiler(None, "# pycni-launcher probe")
    if compiler is None:
        raise RuntimeError(why_not)
    return compiler


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[bytes]
    socket: Path
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """What a launcher needs to use this daemon and nothing else."""
        return {"PYCNI_DAEMON_SOCKET": str(self.socket)}

    def status(self) -> dict[str, Any]:
        return status(str(self.socket))

    def try_status(self) -> dict[str, Any] | None:
        try:
            return self.status()
        except NoDaemon:
            return None

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start_daemon(socket_dir: Path, *args: str, probe: bool = True, name: str = "d.sock") -> DaemonProcess:
    """Start a daemon on `socket_dir/name` and wait until it answers `--status`."""
    if not socket_dir.exists():
        socket_dir.mkdir(mode=0o700, parents=True)
    sock = socket_dir / name
    module = ["-m", "tests.daemon.serve_probe"] if probe else ["-m", "pycni", "daemon"]
    # a port of its own for /metrics: tests start many daemons side by side
    argv = [sys.executable, *module, "--socket", str(sock), "--metrics-address=127.0.0.1:0", *args]
    return _started(argv, sock)


def start_isolated_daemon(
    socket_dir: Path, code_dir: Path, hidden: list[Path], *args: str, probe: bool = True
) -> DaemonProcess:
    """A daemon as the DaemonSet runs one: in a mount namespace of its own, where `hidden` (a
    runtime's netns directory, say) is covered by an empty tmpfs and pycni is a copy in
    `code_dir` the callers cannot see, so it cannot enter their mount namespace either."""
    if not socket_dir.exists():
        socket_dir.mkdir(mode=0o700, parents=True)
    sock = socket_dir / "d.sock"
    package = Path(__file__).resolve().parents[2] / "pycni"
    module = "tests.daemon.serve_probe" if probe else "pycni"
    steps = [f"mount -t tmpfs pycni-hidden {path}" for path in hidden]
    steps += [
        f"mount -t tmpfs pycni-code {code_dir}",
        f"cp -a {package} {code_dir}/pycni",
        f"mount --bind {code_dir}/pycni {package}",
        f'exec "$0" -m {module} {"" if probe else "daemon"} --socket {sock} '
        '--metrics-address=127.0.0.1:0 "$@"',
    ]
    script = " && ".join(steps)
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, sys.executable, *args]
    return _started(argv, sock)


def _started(argv: list[str], sock: Path) -> DaemonProcess:
    log = sock.with_name(sock.name + ".log")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, stdout=out, stderr=out, env={**os.environ, "PYCNI_DAEMON_SOCKET": ""}
        )
    daemon = DaemonProcess(proc, sock, log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited with {proc.returncode}: {log.read_text()}")
        return daemon.try_status() is not None

    try:
        # start-up imports every plugin type: seconds on a loaded 2-core machine, so a wide deadline
        wait_until(ready, timeout=60.0, what=f"the daemon on {sock}")
    except BaseException:
        daemon.stop()
        raise
    return daemon

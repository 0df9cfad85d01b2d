"""A test plugin that tells where it ran, and can be slow, fail, or crash its process.

Each call appends one line to `record`: command, container id, "daemon" or "direct", pid, the
inode of the network namespace it ran in, and what CNI_NETNS opens to here (its inode, "gone",
"not-netns" or "-" for none), so tests can count executions and locate them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from pycni.cni.config import NetConf
from pycni.cni.plugin import Context, PluginRef
from pycni.cni.runtime import RuntimeArgs
from pycni.cni.types import Interface, IPConfig, Result

PROBE = PluginRef("probe", "tests.daemon.probe_plugin:ProbeConf", "tests.daemon.probe_plugin")


class ProbeConf(NetConf):
    record: str | None = None
    delay: float = 0.0
    crash_in_daemon: bool = False
    raise_error: bool = False
    #: Block until this file exists (at most a minute): a request the test holds in flight.
    hold_until: str | None = None


def where() -> str:
    return "daemon" if "pycni.daemon.worker" in sys.modules else "direct"


def _note(conf: ProbeConf, rt: RuntimeArgs) -> None:
    if conf.record:
        netns = os.stat("/proc/thread-self/ns/net").st_ino
        line = f"{rt.command} {rt.container_id} {where()} {os.getpid()} {netns} {_pod_netns(rt)}\n"
        fd = os.open(conf.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    if conf.delay:
        time.sleep(conf.delay)  # stands for slow plugin work, not for synchronisation
    if conf.hold_until:
        deadline = time.monotonic() + 60
        while not os.path.exists(conf.hold_until) and time.monotonic() < deadline:
            time.sleep(0.01)
    if conf.crash_in_daemon and where() == "daemon":
        os._exit(3)
    if conf.raise_error:
        raise RuntimeError("probe told to raise")


def _pod_netns(rt: RuntimeArgs) -> str:
    """CNI_NETNS as a plugin here sees it, through the same calls the real plugins make."""
    from pycni.net import netns

    if not rt.netns:
        return "-"
    try:
        fd = netns.open_netns(rt.netns)
    except netns.NetnsGone:
        return "gone"
    except netns.NotANetns:
        return "not-netns"
    try:
        return str(os.fstat(fd).st_ino)
    finally:
        os.close(fd)


def add(conf: ProbeConf, rt: RuntimeArgs, ctx: Context) -> Result:
    _note(conf, rt)
    return Result.model_validate(
        {
            "cniVersion": conf.cni_version,
            "interfaces": [Interface(name=rt.ifname, sandbox=rt.netns)],
            "ips": [IPConfig.model_validate({"address": "10.77.0.2/24", "interface": 0})],
        }
    )


def delete(conf: ProbeConf, rt: RuntimeArgs, ctx: Context) -> None:
    _note(conf, rt)


def check(conf: ProbeConf, rt: RuntimeArgs, ctx: Context) -> None:
    _note(conf, rt)


def status(conf: ProbeConf, rt: RuntimeArgs, ctx: Context) -> None:
    _note(conf, rt)


def gc(conf: ProbeConf, rt: RuntimeArgs, ctx: Context) -> None:
    _note(conf, rt)


def read_record(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []

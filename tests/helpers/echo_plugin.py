"""A tiny plugin for runner and delegation tests: its result is what its config says.

`record` (a file path) gets one line per call, so tests see which verbs ran and in what order.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field

from pycni.cni.config import NetConf
from pycni.cni.errors import PluginError
from pycni.cni.plugin import Context
from pycni.cni.runtime import RuntimeArgs
from pycni.cni.types import Interface, IPConfig, Result


class EchoConf(NetConf):
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface = ipaddress.ip_interface("10.9.0.2/24")
    record: str | None = None
    fail_on: list[str] = Field(default_factory=list)


def _note(conf: EchoConf, rt: RuntimeArgs) -> None:
    if conf.record:
        with Path(conf.record).open("a") as f:
            f.write(f"{rt.command} {rt.container_id} {rt.ifname}\n")
    if rt.command.value in conf.fail_on:
        raise PluginError(f"echo told to fail on {rt.command}")


def add(conf: EchoConf, rt: RuntimeArgs, ctx: Context) -> Result:
    _note(conf, rt)
    return Result.model_validate(
        {
            "cniVersion": conf.cni_version,
            "interfaces": [Interface(name=rt.ifname, sandbox=rt.netns)],
            "ips": [IPConfig(address=conf.address, interface=0)],
        }
    )


def delete(conf: EchoConf, rt: RuntimeArgs, ctx: Context) -> None:
    _note(conf, rt)


def check(conf: EchoConf, rt: RuntimeArgs, ctx: Context) -> None:
    _note(conf, rt)


def status(conf: EchoConf, rt: RuntimeArgs, ctx: Context) -> None:
    _note(conf, rt)


def gc(conf: EchoConf, rt: RuntimeArgs, ctx: Context) -> None:
    _note(conf, rt)

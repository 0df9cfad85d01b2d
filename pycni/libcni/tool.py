"""`pycni exec`: run a network config list against a netns, as a container runtime would.

A cnitool for operators and tests: plugins run in order with prevResult chaining (DEL in
reverse), the ADD result is cached like libcni's, and DEL/CHECK/GC read that cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycni.cni.errors import InvalidConfig
from pycni.cni.runtime import Command, RuntimeArgs, parse_cni_args, validate_ifname
from pycni.libcni import netlist
from pycni.libcni.cache import ResultCache
from pycni.libcni.conflist import NetConfList

if TYPE_CHECKING:
    from pycni.cni.plugin import Delegate


@dataclass
class ExecOptions:
    """What `pycni exec` was asked to do: the config, the attachment and where plugins are."""

    conf_path: Path
    netns: str
    ifname: str = "eth0"
    container_id: str = ""
    cni_path: tuple[str, ...] = ()
    cni_args: str = ""
    capability_args: dict[str, Any] = field(default_factory=dict)
    cache_dir: Path = Path("/var/lib/cni")


def netns_path(netns: str) -> str:
    """A bare name means `ip netns` (/run/netns/NAME), as cnitool does."""
    return netns if "/" in netns or not netns else f"/run/netns/{netns}"


def default_container_id(netns: str) -> str:
    return "pycni-" + hashlib.sha512(netns.encode()).hexdigest()[:20]


class Tool:
    def __init__(self, req: ExecOptions, delegate: Delegate) -> None:
        self.req = req
        self.delegate = delegate
        self.conflist = NetConfList.from_file(req.conf_path)
        self.version = self.conflist.negotiated_version
        self.cache = ResultCache(req.cache_dir)
        self.netns = netns_path(req.netns)
        self.container_id = req.container_id or default_container_id(self.netns)

    def rt(self, command: Command) -> RuntimeArgs:
        if command in (Command.ADD, Command.CHECK, Command.DEL):
            validate_ifname(self.req.ifname)
        return RuntimeArgs(
            command=command,
            container_id=self.container_id,
            netns=self.netns,
            ifname=self.req.ifname,
            args=parse_cni_args(self.req.cni_args),
            path=self.req.cni_path,
            env=inherited_env(),
        )

    def call(self, command: Command) -> netlist.NetworkCall:
        return netlist.NetworkCall(
            netlist=self.conflist,
            rt=self.rt(command),
            cache=self.cache,
            capability_args=self.req.capability_args,
            config=self.req.conf_path.read_bytes() if command is Command.ADD else b"",
        )

    def add(self) -> dict[str, Any] | None:
        return netlist.add(self.call(Command.ADD), self.delegate)

    def delete(self) -> None:
        netlist.delete(self.call(Command.DEL), self.delegate)

    def check(self) -> None:
        netlist.check(self.call(Command.CHECK), self.delegate)

    def status(self) -> None:
        netlist.status(self.call(Command.STATUS), self.delegate)

    def gc(self) -> None:
        """GC with every cached attachment of this network as the valid list."""
        valid = [
            {"containerID": a.container_id, "ifname": a.ifname}
            for a in self.cache.attachments(self.conflist.name)
        ]
        netlist.gc(self.call(Command.GC), self.delegate, valid)


def run(command: str, req: ExecOptions, delegate: Delegate) -> dict[str, Any] | None:
    tool = Tool(req, delegate)
    match Command(command.upper()):
        case Command.ADD:
            return tool.add()
        case Command.DEL:
            tool.delete()
        case Command.CHECK:
            tool.check()
        case Command.STATUS:
            tool.status()
        case Command.GC:
            tool.gc()
        case _:
            raise InvalidConfig(f"unknown command {command}")
    return None


def dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2)


def inherited_env() -> dict[str, str]:
    """The environment exec'd plugins get besides the CNI variables, as libcni passes its
    process's (`invoke.Args.AsEnv`): PATH above all, where plugins find iptables and friends."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}

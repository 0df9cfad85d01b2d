"""`pycni exec`: run a network config list against a netns, as a container runtime would.

A cnitool for operators and tests: plugins run in order with prevResult chaining (DEL in
reverse), the ADD result is cached like libcni's, and DEL/CHECK/GC read that cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycni.cni import version
from pycni.cni.errors import CNIError, IncompatibleVersion, InvalidConfig
from pycni.cni.runtime import Command, RuntimeArgs, parse_cni_args, validate_ifname
from pycni.libcni.cache import CachedAttachment, ResultCache
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
            env={},
        )

    def add(self) -> dict[str, Any] | None:
        rt = self.rt(Command.ADD)
        prev: dict[str, Any] | None = None
        for plugin in self.conflist.plugins:
            conf = self.conflist.plugin_conf(plugin, prev, self.req.capability_args)
            result = self.delegate.call(plugin["type"], conf, rt)
            prev = _render(result, self.version) if result is not None else prev
        self.cache.save(
            CachedAttachment(
                network=self.conflist.name,
                container_id=self.container_id,
                ifname=self.req.ifname,
                netns=self.netns,
                result=prev,
                cni_args=[list(p) for p in rt.args],
                capability_args=self.req.capability_args,
            ),
            self.req.conf_path.read_bytes(),
        )
        return prev

    def delete(self) -> None:
        rt = self.rt(Command.DEL)
        cached = self.cache.load(self.conflist.name, self.container_id, self.req.ifname)
        prev = cached.result if cached and version.at_least(self.version, "0.4.0") else None
        for plugin in reversed(self.conflist.plugins):
            conf = self.conflist.plugin_conf(plugin, prev, self.req.capability_args)
            self.delegate.call(plugin["type"], conf, rt)
        self.cache.remove(self.conflist.name, self.container_id, self.req.ifname)

    def check(self) -> None:
        if not version.at_least(self.version, "0.4.0"):
            raise IncompatibleVersion(f"configuration version {self.version} does not support CHECK")
        if self.conflist.disable_check:
            return
        cached = self.cache.load(self.conflist.name, self.container_id, self.req.ifname)
        if cached is None or cached.result is None:
            raise InvalidConfig(
                f"no cached result for {self.conflist.name}/{self.container_id}/{self.req.ifname}"
            )
        rt = self.rt(Command.CHECK)
        for plugin in self.conflist.plugins:
            conf = self.conflist.plugin_conf(plugin, cached.result, self.req.capability_args)
            self.delegate.call(plugin["type"], conf, rt)

    def status(self) -> None:
        rt = self.rt(Command.STATUS)
        for plugin in self.conflist.plugins:
            self.delegate.call(plugin["type"], self.conflist.plugin_conf(plugin), rt)

    def gc(self) -> None:
        """GC with every cached attachment of this network as the valid list; errors joined."""
        if self.conflist.disable_gc or not version.at_least(self.version, "1.1.0"):
            return
        valid = [
            {"containerID": a.container_id, "ifname": a.ifname}
            for a in self.cache.attachments(self.conflist.name)
        ]
        rt = self.rt(Command.GC)
        errors: list[str] = []
        for plugin in self.conflist.plugins:
            conf = self.conflist.plugin_conf(plugin)
            conf["cni.dev/valid-attachments"] = valid
            conf["cni.dev/attachments"] = valid
            try:
                self.delegate.call(plugin["type"], conf, rt)
            except CNIError as err:
                errors.append(f"{plugin['type']}: {err.msg}")
        if errors:
            raise CNIError("; ".join(errors))


def _render(result: Any, cni_version: str) -> dict[str, Any]:
    from pycni.cni.types import render

    rendered: dict[str, Any] = render(result, cni_version)
    return rendered


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

"""One network (a `.conf` or a `.conflist`) on one attachment, as libcni's `*NetworkList` calls run it.

ADD runs the plugins in order, each getting the previous one's result as `prevResult`, and
caches the final result in libcni's format; DEL runs them in reverse with the cached result
and drops the cache entry only once every plugin's DEL succeeded, so a retried DEL still has
what it needs; CHECK reads the cache; GC and STATUS go to every plugin. `pycni exec` and the
multus meta-plugin both attach networks through here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pycni.cni import version
from pycni.cni.errors import CNIError, IncompatibleVersion, InvalidConfig, PluginNotFound
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.libcni.cache import CachedAttachment, ResultCache

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pycni.cni.plugin import Delegate
    from pycni.cni.types import Result
    from pycni.libcni.conflist import NetConfList


@dataclass(frozen=True)
class NetworkCall:
    """A network list, the attachment it acts on, and where its results are cached."""

    netlist: NetConfList
    rt: RuntimeArgs
    cache: ResultCache
    capability_args: dict[str, Any] = field(default_factory=dict)
    #: The bytes cached as the entry's `config` (libcni keeps the list as it read it).
    config: bytes = b""

    @property
    def version(self) -> str:
        return self.netlist.negotiated_version

    def rt_for(self, command: Command) -> RuntimeArgs:
        return self.rt.with_command(command)

    def conf_for(self, plugin: dict[str, Any], prev: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.netlist.plugin_conf(plugin, prev, self.capability_args)

    def cached(self) -> CachedAttachment | None:
        return self.cache.load(self.netlist.name, self.rt.container_id, self.rt.ifname)


def add(call: NetworkCall, delegate: Delegate) -> dict[str, Any] | None:
    """ADD every plugin with prevResult chaining; the final result (in the list's version), cached."""
    rt = call.rt_for(Command.ADD)
    prev: dict[str, Any] | None = None
    for plugin in call.netlist.plugins:
        result = delegate.call(plugin["type"], call.conf_for(plugin, prev), rt)
        prev = render(result, call.version) if result is not None else prev
    call.cache.save(
        CachedAttachment(
            network=call.netlist.name,
            container_id=rt.container_id,
            ifname=rt.ifname,
            netns=rt.netns,
            result=prev,
            cni_args=[list(p) for p in rt.args],
            capability_args=call.capability_args,
        ),
        call.config or json.dumps(call.netlist.model_dump(by_alias=True)).encode(),
    )
    return prev


def delete(call: NetworkCall, delegate: Delegate) -> None:
    """DEL every plugin in reverse; the cache entry goes only after the last one succeeded.

    A plugin that is not installed is skipped when no ADD of the attachment completed (nothing
    is cached): it cannot have run, so it has nothing to undo, and failing would fail every
    retry the same way, leaving the runtime a sandbox it can never remove. Once an ADD did
    complete, its missing plugin is an error: the DEL is retried until it is installed again.
    """
    rt = call.rt_for(Command.DEL)
    cached = call.cached()
    prev = cached.result if cached and version.at_least(call.version, "0.4.0") else None
    for plugin in reversed(call.netlist.plugins):
        try:
            delegate.call(plugin["type"], call.conf_for(plugin, prev), rt)
        except PluginNotFound as err:
            if cached is not None or err.plugin_type != plugin["type"]:
                raise
            log.warning(
                "DEL of network %r on %s/%s: %s, and no ADD of it completed: nothing of it to undo",
                call.netlist.name, rt.container_id, rt.ifname, err.msg,
            )  # fmt: skip
    call.cache.remove(call.netlist.name, rt.container_id, rt.ifname)


def check(call: NetworkCall, delegate: Delegate) -> None:
    """CHECK every plugin against the cached result (none cached is an error, as in libcni)."""
    if not version.at_least(call.version, "0.4.0"):
        raise IncompatibleVersion(f"configuration version {call.version} does not support CHECK")
    if call.netlist.disable_check:
        return
    cached = call.cached()
    if cached is None or cached.result is None:
        raise InvalidConfig(
            f"no cached result for network {call.netlist.name!r} on "
            f"{call.rt.container_id}/{call.rt.ifname}: was it added?"
        )
    rt = call.rt_for(Command.CHECK)
    for plugin in call.netlist.plugins:
        delegate.call(plugin["type"], call.conf_for(plugin, cached.result), rt)


def status(call: NetworkCall, delegate: Delegate) -> None:
    """STATUS every plugin, in order; the first failure is the network's answer."""
    rt = call.rt_for(Command.STATUS)
    for plugin in call.netlist.plugins:
        delegate.call(plugin["type"], call.netlist.plugin_conf(plugin), rt)


def gc(call: NetworkCall, delegate: Delegate, valid: list[dict[str, str]]) -> None:
    """GC every plugin with `valid` as the attachments to keep; failures joined into one error."""
    if call.netlist.disable_gc or not version.at_least(call.version, "1.1.0"):
        return
    rt = call.rt_for(Command.GC)
    errors: list[str] = []
    for plugin in call.netlist.plugins:
        conf = call.netlist.plugin_conf(plugin)
        conf["cni.dev/valid-attachments"] = valid
        conf["cni.dev/attachments"] = valid
        try:
            delegate.call(plugin["type"], conf, rt)
        except CNIError as err:
            errors.append(f"{plugin['type']}: {err.msg}")
    if errors:
        raise CNIError("; ".join(errors))


def render(result: Result, cni_version: str) -> dict[str, Any]:
    from pycni.cni.types import render as render_result

    rendered: dict[str, Any] = render_result(result, cni_version)
    return rendered

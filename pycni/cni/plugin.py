"""The plugin contract: a config model plus five verbs, and what a verb may use besides its config.

A plugin type is named by a `PluginRef` holding import paths, so the runner answers VERSION
(and the daemon lists types) without importing the plugin, pydantic or pyroute2. Its ops module
must define every verb of `PluginOps`; `PluginRef.load_ops` checks that when it first loads the
module, so a misspelt or missing verb is an error, never a silent success.
"""

from __future__ import annotations

import builtins
import importlib
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from pycni.cni.errors import InternalError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Protocol

    from pycni.cni.config import NetConf
    from pycni.cni.runtime import RuntimeArgs
    from pycni.cni.settings import Settings
    from pycni.cni.types import Result

    # The contract's two protocols exist for the type checker only: nothing checks them with
    # isinstance, and building Protocol classes costs every exec'd call (even VERSION) ~1 ms.
    class Delegate(Protocol):
        """Runs a plugin of another type for the current request (bridge → host-local, multus → any)."""

        def call(self, plugin_type: str, conf: Mapping[str, Any], rt: RuntimeArgs) -> Result | None:
            """Run `rt.command` on `plugin_type` with `conf` on stdin; the ADD result, else None."""
            ...

        def validate(self, plugin_type: str, conf: Mapping[str, Any], rt: RuntimeArgs) -> None:
            """Raise the spec error `call` would raise for an invalid `conf`; nothing is run.

            Every plugin with an `ipam` section asks before its first kernel change, so an invalid
            section is refused (code 7) instead of failing halfway and again in the rollback.
            """
            ...

    class PluginOps(Protocol):
        """What an ops module provides: the five verbs, each a plain function of its arguments."""

        def add(self, conf: Any, rt: RuntimeArgs, ctx: Context) -> Result: ...

        def check(self, conf: Any, rt: RuntimeArgs, ctx: Context) -> None: ...

        def delete(self, conf: Any, rt: RuntimeArgs, ctx: Context) -> None: ...

        def status(self, conf: Any, rt: RuntimeArgs, ctx: Context) -> None: ...

        def gc(self, conf: Any, rt: RuntimeArgs, ctx: Context) -> None: ...


#: The verbs every ops module defines, by the name of their function (`del` is a keyword).
VERBS = ("add", "check", "delete", "status", "gc")


class Context(NamedTuple):
    """What a verb may use besides its config and runtime args; tests swap these freely."""

    delegate: Delegate
    settings: Settings


def check_add(conf: NetConf) -> None:
    """What an ADD can know will fail, refused before its first kernel change.

    Both would otherwise fail only after the pod was set up: a 0.1.0/0.2.0 result must hold an
    IP, so an ADD without IPAM at those versions could not print its result (code 1), and
    `dns` is read into the result last (code 7 when it is not a DNS object).
    """
    from pycni.cni import version
    from pycni.cni.errors import IncompatibleVersion

    if not conf.has_ipam and not version.has_interfaces(conf.cni_version):
        raise IncompatibleVersion(
            f"CNI {conf.cni_version} results must carry an IP address: this network has no ipam "
            "(use cniVersion 0.3.0 or later, or configure ipam)"
        )
    if conf.dns:
        _check_dns(conf.dns)


def check_requested_mac(conf: NetConf, rt: RuntimeArgs) -> None:
    """A MAC asked for (`runtimeConfig`, `args`, CNI_ARGS `MAC`) for a veth, judged before it is made.

    The kernel sees it only when the interface is created; unless it is a unicast Ethernet
    address in the usual notation it is refused first: code 7 from the config, 4 from CNI_ARGS.
    """
    from pycni.cni.errors import InvalidConfig, InvalidEnvironment

    for key, mac in (("runtimeConfig.mac", conf.runtime_config.mac), ("args.cni.mac", conf.args.cni.mac)):
        if mac is not None and not _unicast_mac(mac):
            raise InvalidConfig(f"{key}: {mac!r} is not a unicast MAC address such as '0a:58:0a:01:02:03'")
    from_args = rt.arg("MAC")
    if from_args is not None and not _unicast_mac(from_args):
        raise InvalidEnvironment(f"CNI_ARGS MAC: {from_args!r} is not a unicast MAC address")


def _unicast_mac(mac: str) -> bool:
    import re

    return bool(re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", mac)) and not int(mac[:2], 16) & 1


def _check_dns(dns: Mapping[str, Any]) -> None:
    from pydantic import ValidationError

    from pycni.cni.config import describe_validation_error
    from pycni.cni.errors import InvalidConfig
    from pycni.cni.types import DNS

    try:
        DNS.model_validate(dns)
    except ValidationError as err:
        raise InvalidConfig(describe_validation_error(err, "invalid dns")) from None


def check_link_name(key: str, name: str) -> None:
    """A link name from the config, held to the kernel's rules (code 7 naming the key).

    The kernel would refuse it too, but only once ADD is under way and as an internal error.
    """
    from pycni.cni.errors import InvalidConfig, InvalidEnvironment
    from pycni.cni.runtime import validate_ifname

    try:
        validate_ifname(name)
    except InvalidEnvironment as err:
        reason = err.msg.removeprefix(f"CNI_IFNAME {name!r} ").removeprefix("CNI_IFNAME ")
        raise InvalidConfig(f"{key}: {name!r} is not a valid interface name: {reason}") from None


def missing_verbs(ops: object) -> list[str]:
    """The verbs of the contract that `ops` does not define as callables."""
    return [verb for verb in VERBS if not callable(getattr(ops, verb, None))]


class PluginRef(NamedTuple):
    """A plugin type, by import path: `conf` is "module:Class", `ops` a module name.

    A NamedTuple rather than a dataclass: the registry builds one per type on every exec'd call.
    """

    type: str
    conf: str
    ops: str

    def load_conf_model(self) -> builtins.type[NetConf]:
        module, _, name = self.conf.partition(":")
        model: builtins.type[NetConf] = getattr(importlib.import_module(module), name)
        return model

    def load_ops(self) -> PluginOps:
        """The ops module, checked against the contract (imports are cached, so is the check's cost)."""
        module = importlib.import_module(self.ops)
        missing = missing_verbs(module)
        if missing:
            raise InternalError(f"the {self.type} plugin ({self.ops}) does not define {', '.join(missing)}")
        return cast("PluginOps", module)

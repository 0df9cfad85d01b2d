"""The plugin contract: a config model plus five verbs, and what a verb may use besides its config.

A plugin type is named by a `PluginRef` holding import paths, so the runner answers VERSION
(and the daemon lists types) without importing the plugin, pydantic or pyroute2. Its ops module
must define every verb of `PluginOps`; `PluginRef.load_ops` checks that when it first loads the
module, so a misspelt or missing verb is an error, never a silent success. A `PluginRef` also
declares which of the runner's common rules the type needs (`delegates_ipam`,
`needs_prev_result`): the runner applies them before the verb, so no verb repeats them.
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
    #: The type makes the pod's interface and hands its `ipam` section to an IPAM plugin: before
    #: every verb the runner has the delegate judge that section (so an invalid one is code 7
    #: before anything changes), and before ADD it refuses what could not be printed
    #: (`NetConf.validate_for_add`).
    delegates_ipam: bool = False
    #: CHECK compares the kernel against `prevResult`: the runner refuses a CHECK without one.
    needs_prev_result: bool = False
    #: DEL's one wait on the kernel is deleting the pod's link (a veth: the kernel's unregistration
    #: takes ~20 ms without a CPU), which may be left to the caller that sent the request to the
    #: node daemon: `pycni.cni.callerview.leave_link_to_caller`.
    caller_may_delete_pod_link: bool = False

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

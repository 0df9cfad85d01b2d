"""The plugin contract: a config model plus add/check/delete/status/gc functions.

A plugin type is named by a `PluginRef` holding import paths, so the runner can answer
VERSION (and the daemon can list types) without importing the plugin or pyroute2.
"""

from __future__ import annotations

import builtins
import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pycni.cni.config import NetConf
    from pycni.cni.runtime import RuntimeArgs
    from pycni.cni.types import Result
    from pycni.libcni.delegate import Delegate


class PluginOps(Protocol):
    """What an ops module provides. `check`, `status` and `gc` are optional: a missing one is a no-op."""

    def add(self, conf: Any, rt: RuntimeArgs, ctx: Context) -> Result: ...

    def delete(self, conf: Any, rt: RuntimeArgs, ctx: Context) -> None: ...


@dataclass(frozen=True)
class PluginRef:
    """A plugin type, by import path: `conf` is "module:Class", `ops` a module name.

    `ops is None` marks a type whose implementation has not landed: it answers VERSION and
    returns a clear error for every other command.
    """

    type: str
    conf: str | None = None
    ops: str | None = None

    @property
    def implemented(self) -> bool:
        """True once the type's ops module exists (checked without importing it)."""
        if self.ops is None:
            return False
        import importlib.util

        try:
            return importlib.util.find_spec(self.ops) is not None
        except ModuleNotFoundError:
            return False

    def load_conf_model(self) -> builtins.type[NetConf]:
        if self.conf is None:
            from pycni.cni.config import NetConf

            return NetConf
        module, _, name = self.conf.partition(":")
        model: builtins.type[NetConf] = getattr(importlib.import_module(module), name)
        return model

    def load_ops(self) -> ModuleType:
        assert self.ops is not None
        return importlib.import_module(self.ops)


@dataclass
class Context:
    """What a plugin may use besides its config and runtime args; tests swap these freely."""

    delegate: Delegate
    env: Mapping[str, str] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("pycni"))

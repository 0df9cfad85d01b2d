"""A recording delegate: remembers every call, returns canned results, fails on demand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pycni.cni.errors import PluginError
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.cni.types import Result


@dataclass
class RecordingDelegate:
    results: dict[str, Result] = field(default_factory=dict)
    fail: set[tuple[str, Command]] = field(default_factory=set)
    calls: list[tuple[str, Command, dict[str, Any]]] = field(default_factory=list)

    def call(self, plugin_type: str, conf: Any, rt: RuntimeArgs) -> Result | None:
        self.calls.append((plugin_type, rt.command, dict(conf)))
        if (plugin_type, rt.command) in self.fail:
            raise PluginError(f"{plugin_type} {rt.command} failed (injected)")
        return self.results.get(plugin_type, Result()) if rt.command is Command.ADD else None

    def validate(self, plugin_type: str, conf: Any, rt: RuntimeArgs) -> None:
        """A stand-in judges nothing: `call` answers as the test scripted."""

    def commands(self) -> list[tuple[str, Command]]:
        return [(t, c) for t, c, _ in self.calls]

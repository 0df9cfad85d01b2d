"""Calling another plugin by `type`: our own in-process, anything else by exec on CNI_PATH.

bridge calls host-local through this exactly as multus calls its delegates. In-process calls
go through the same validation and dispatch as an exec'd plugin (`skel.invoke`), so results
and errors are the same, without a new interpreter.

`validate` judges a delegate's config without running it, so a plugin refuses an invalid `ipam`
section (code 7) before its first kernel change: our own types load their config model, a
foreign type must be a plain name found on CNI_PATH (its config is its own business).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pycni.cni import strict_json, timing, version
from pycni.cni.errors import (
    CNIError,
    DecodingFailure,
    InternalError,
    InvalidConfig,
    PluginNotFound,
    from_code,
)
from pycni.cni.plugin import Context
from pycni.cni.rollback import quietly
from pycni.cni.runtime import Command, RuntimeArgs

if TYPE_CHECKING:
    from pycni.cni.config import NetConf
    from pycni.cni.plugin import Delegate, PluginRef
    from pycni.cni.settings import Settings
    from pycni.cni.types import Result

Conf = Mapping[str, Any]


def add(delegate: Delegate, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> Result:
    result = delegate.call(plugin_type, conf, rt.with_command(Command.ADD))
    if result is None:
        raise InternalError(f"delegate {plugin_type} returned no result for ADD")
    return result


def add_with_undo(
    undo: ExitStack, delegate: Delegate, plugin_type: str, conf: Conf, rt: RuntimeArgs
) -> Result:
    """Delegate ADD and register its DEL on `undo`; a failed ADD is DEL'd too (spec §ADD)."""
    try:
        result = add(delegate, plugin_type, conf, rt)
    except BaseException:
        quietly(delete)(delegate, plugin_type, conf, rt)
        raise
    undo.callback(quietly(delete), delegate, plugin_type, conf, rt)
    return result


def delete(delegate: Delegate, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> None:
    delegate.call(plugin_type, conf, rt.with_command(Command.DEL))


def check(delegate: Delegate, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> None:
    delegate.call(plugin_type, conf, rt.with_command(Command.CHECK))


def status(delegate: Delegate, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> None:
    delegate.call(plugin_type, conf, rt.with_command(Command.STATUS))


def gc(delegate: Delegate, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> None:
    delegate.call(plugin_type, conf, rt.with_command(Command.GC))


def _negotiated(conf: Conf) -> str:
    return version.negotiate(conf.get("cniVersion"), conf.get("cniVersions"))


#: Finds our implementation of a type (the registry's `lookup`; tests pass their own).
Lookup = Callable[[str], "PluginRef | None"]

#: Our types running in-process for the current request, outermost first. A plugin passes its
#: whole config to its IPAM type, so `"ipam": {"type": "bridge"}` in a bridge config would call
#: bridge again, forever: a type already on this chain is refused instead.
_CHAIN: ContextVar[tuple[str, ...]] = ContextVar("pycni_delegate_chain", default=())


def _refuse_loop(plugin_type: str) -> None:
    chain = _CHAIN.get()
    if plugin_type in chain:
        raise InvalidConfig(f"delegating to {plugin_type!r} loops: {' -> '.join((*chain, plugin_type))}")


@contextmanager
def _running(plugin_type: str) -> Iterator[None]:
    token = _CHAIN.set((*_CHAIN.get(), plugin_type))
    try:
        yield
    finally:
        _CHAIN.reset(token)


class InProcessDelegate:
    """Our own plugin types, called as functions with this call's settings.

    A nested delegation (bridge → host-local inside multus) goes through `outer`, so a type
    that is not ours is still exec'd at any depth.
    """

    def __init__(self, lookup: Lookup, settings: Settings, outer: Delegate | None = None) -> None:
        self.lookup = lookup
        self.settings = settings
        self.outer = outer

    def call(self, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> Result | None:
        from pycni.cni import skel

        ref = self._ref(plugin_type)
        cni_version = _negotiated(conf)
        skel.check_min_version(rt.command, cni_version)
        ctx = Context(delegate=self.outer or self, settings=self.settings)
        with _running(plugin_type):
            return skel.invoke(ref, rt, dict(conf), cni_version, ctx)

    def validate(self, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> None:
        """Load `conf` into the type's config model, as `call` would first (code 7 if invalid)."""
        from pycni.cni import skel

        ref = self._ref(plugin_type)
        cni_version = _negotiated(conf)
        skel.check_min_version(rt.command, cni_version)
        ref.load_conf_model().load(dict(conf), cni_version)

    def _ref(self, plugin_type: str) -> PluginRef:
        ref = self.lookup(plugin_type)
        if ref is None:
            raise InvalidConfig(f"{plugin_type!r} is not a pycni plugin type")
        _refuse_loop(plugin_type)
        return ref


class ExecDelegate:
    """Foreign plugins: exec the binary found on CNI_PATH with the spec's env and stdin."""

    attempts = 5  # libcni retries "text file busy" while a binary is being replaced

    def call(self, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> Result | None:
        binary = find_in_path(plugin_type, rt.path)
        env = {**rt.env, **rt.to_env()}
        stdin = json.dumps(conf).encode()
        proc = self._exec(binary, env, stdin)
        if proc.returncode != 0:
            raise _error_from(plugin_type, proc)
        if rt.command is not Command.ADD:
            return None
        from pycni.cni.types import parse_result

        raw = strict_json.loads(proc.stdout, f"the result delegate {plugin_type} printed")
        return parse_result(raw, _negotiated(conf))

    def validate(self, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> None:
        """A foreign type must be a plain name of an executable on CNI_PATH; its config is its own."""
        check_type_name(plugin_type)
        if _find(plugin_type, rt.path) is None:
            raise InvalidConfig(f"no plugin {plugin_type!r} in CNI_PATH {list(rt.path)}")

    def _exec(self, binary: str, env: dict[str, str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        for attempt in range(self.attempts):
            try:
                return subprocess.run([binary], input=stdin, env=env, stdout=subprocess.PIPE, check=False)
            except OSError as err:
                if err.errno != errno.ETXTBSY or attempt == self.attempts - 1:
                    raise InternalError(f"failed to exec plugin {binary}: {err.strerror}") from err
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")


class AutoDelegate:
    """In-process when the type is ours, exec otherwise."""

    def __init__(self, lookup: Lookup, settings: Settings) -> None:
        self.lookup = lookup
        self.in_process = InProcessDelegate(lookup, settings, outer=self)
        self.exec = ExecDelegate()

    def call(self, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> Result | None:
        started = timing.start()
        try:
            return self._target(plugin_type).call(plugin_type, conf, rt)
        finally:
            timing.stop(_phase(plugin_type, conf), started)

    def validate(self, plugin_type: str, conf: Conf, rt: RuntimeArgs) -> None:
        self._target(plugin_type).validate(plugin_type, conf, rt)

    def _target(self, plugin_type: str) -> InProcessDelegate | ExecDelegate:
        return self.in_process if self.lookup(plugin_type) else self.exec


def _phase(plugin_type: str, conf: Conf) -> str:
    """IPAM when a plugin calls the type its `ipam` section names (it passes its whole config)."""
    ipam_section = conf.get("ipam")
    is_ipam = isinstance(ipam_section, Mapping) and ipam_section.get("type") == plugin_type
    return timing.IPAM if is_ipam else timing.DELEGATE


def check_type_name(plugin_type: str) -> None:
    """A type names a file in a CNI_PATH directory: never a path, `.`, `..` or empty (code 7)."""
    if not plugin_type or plugin_type in (".", "..") or "/" in plugin_type or "\0" in plugin_type:
        raise InvalidConfig(f"invalid plugin type {plugin_type!r}: it must be a plain file name")


def find_in_path(plugin_type: str, path: tuple[str, ...]) -> str:
    check_type_name(plugin_type)
    found = _find(plugin_type, path)
    if found is None:
        raise PluginNotFound.on_path(plugin_type, path)
    return found


def _find(plugin_type: str, path: tuple[str, ...]) -> str | None:
    for directory in path:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _error_from(plugin_type: str, proc: subprocess.CompletedProcess[bytes]) -> CNIError:
    """The delegate's own error object when it printed one (libcni reads stdout first)."""
    try:
        obj = strict_json.loads(proc.stdout, f"the error delegate {plugin_type} printed")
        return from_code(int(obj["code"]), str(obj.get("msg", "")), str(obj.get("details", "")))
    except (DecodingFailure, ValueError, KeyError, TypeError, AttributeError):
        text = (proc.stdout or b"").decode(errors="replace").strip()
        return InternalError(f"plugin {plugin_type} failed (exit {proc.returncode}): {text or 'no output'}")


def ipam(delegate: Delegate, conf: NetConf, rt: RuntimeArgs, command: Command) -> None:
    """Run DEL, CHECK, STATUS or GC on the network's IPAM plugin; nothing for an L2-only network."""
    if conf.ipam is not None and conf.ipam.type:
        delegate.call(conf.ipam.type, conf.raw, rt.with_command(command))

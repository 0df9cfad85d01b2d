"""The plugin runner: env and stdin in, a result or a spec error out, one exit code.

It takes its world as arguments (env, stdin, stdout), so tests and the node daemon drive
it without a process. VERSION is answered before anything beyond the standard library is
imported; the config model and the plugin's ops load only once a verb needs them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from pycni.cni import version
from pycni.cni.errors import (
    CNIError,
    DecodingFailure,
    InvalidConfig,
    InvalidEnvironment,
    IOFailure,
    NotImplementedYet,
    to_error,
)
from pycni.cni.plugin import Context, PluginRef
from pycni.cni.runtime import Command, RuntimeArgs

if TYPE_CHECKING:
    from pycni.cni.types import Result

log = logging.getLogger("pycni.skel")


def run(
    plugin: PluginRef,
    env: Mapping[str, str],
    stdin: IO[bytes],
    stdout: IO[str],
    ctx: Context | None = None,
) -> int:
    """Run one CNI request; print its result or error on `stdout`; return the exit code."""
    cni_version: str | None = None
    try:
        command = _command(env)
        raw = _read_stdin(stdin)
        if command is Command.VERSION:
            _print(stdout, _version_answer(raw))
            return 0
        rt = RuntimeArgs.from_env(command, env)
        conf_json = _decode(raw)
        cni_version = version.negotiate(conf_json.get("cniVersion"), conf_json.get("cniVersions"))
        check_min_version(command, cni_version)
        result = invoke(plugin, rt, conf_json, cni_version, ctx)
        if result is not None:
            from pycni.cni.types import render

            _print(stdout, render(result, cni_version))
        return 0
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        err = to_error(exc)
        if not isinstance(exc, CNIError):
            log.error("unexpected failure in %s plugin", plugin.type, exc_info=exc)
        _print(stdout, err.to_json(cni_version))
        return 1


def invoke(
    plugin: PluginRef,
    rt: RuntimeArgs,
    conf_json: dict[str, Any],
    cni_version: str,
    ctx: Context | None = None,
) -> Result | None:
    """Validate the config and call the verb; the ADD result in the newest model."""
    if not plugin.implemented:
        raise NotImplementedYet(f"the {plugin.type} plugin does not implement {rt.command} in this release")
    conf = plugin.load_conf_model().load(conf_json, cni_version)
    ops = plugin.load_ops()
    ctx = ctx or default_context(rt)
    func = getattr(ops, _OPS_NAME[rt.command], None)
    if func is None:
        return None  # the spec's skel treats a verb without a handler as a successful no-op
    result: Result | None = func(conf, rt, ctx)
    return result if rt.command is Command.ADD else None


_OPS_NAME = {
    Command.ADD: "add",
    Command.DEL: "delete",
    Command.CHECK: "check",
    Command.STATUS: "status",
    Command.GC: "gc",
}


def default_context(rt: RuntimeArgs) -> Context:
    from pycni.libcni.delegate import AutoDelegate

    return Context(delegate=AutoDelegate(), env=rt.env)


def _command(env: Mapping[str, str]) -> Command:
    name = env.get("CNI_COMMAND", "")
    if not name:
        raise InvalidEnvironment("required env variables [CNI_COMMAND] missing")
    try:
        return Command(name)
    except ValueError:
        raise InvalidEnvironment(f"unknown CNI_COMMAND: {name}") from None


def _read_stdin(stdin: IO[bytes]) -> bytes:
    try:
        return stdin.read()
    except OSError as err:
        raise IOFailure(f"error reading from stdin: {err}") from err


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        conf = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise DecodingFailure(f"error parsing network config: {err}") from err
    if not isinstance(conf, dict):
        raise DecodingFailure("error parsing network config: expected a JSON object")
    if not conf.get("name"):
        raise InvalidConfig("missing network name")
    return conf


def _version_answer(raw: bytes) -> dict[str, Any]:
    """Echo the caller's version when we speak it (the Go skel always says its own)."""
    asked = None
    with contextlib.suppress(ValueError, AttributeError, UnicodeDecodeError):
        asked = json.loads(raw).get("cniVersion") if raw.strip() else None
    answer = asked if asked in version.SUPPORTED_VERSIONS else version.CURRENT
    return {"cniVersion": answer, "supportedVersions": list(version.SUPPORTED_VERSIONS)}


def check_min_version(command: Command, cni_version: str) -> None:
    minimum = version.MIN_VERSION[command]
    if not version.at_least(cni_version, minimum):
        from pycni.cni.errors import IncompatibleVersion

        raise IncompatibleVersion(
            f"config version {cni_version} does not allow {command}: it needs {minimum}+"
        )


def _print(stdout: IO[str], obj: Mapping[str, Any]) -> None:
    stdout.write(json.dumps(obj, separators=(",", ":")))
    stdout.write("\n")
    stdout.flush()


def main(plugin_type: str) -> None:
    """Entry point of an installed executable: run the request with the process's world."""
    import os

    from pycni.cni.logs import setup_logging
    from pycni.registry import PLUGINS

    setup_logging(os.environ)
    code = run(PLUGINS[plugin_type], os.environ, sys.stdin.buffer, sys.stdout)
    sys.exit(code)

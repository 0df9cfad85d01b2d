"""The plugin runner: env and stdin in, a result or a spec error out, one exit code.

It takes its world as arguments (env, stdin, stdout), so tests and the node daemon drive
it without a process. VERSION is answered before anything beyond the standard library is
imported; the config model and the plugin's ops load only once a verb needs them.

It also applies the rules a type declares on its `PluginRef` (`apply_declared_rules`), once,
before the verb: a plugin's verbs start with their own work.
"""

from __future__ import annotations

import json
import logging
import reprlib
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

from pycni.cni import strict_json, version
from pycni.cni.errors import (
    CNIError,
    DecodingFailure,
    InvalidConfig,
    InvalidEnvironment,
    IOFailure,
    to_error,
)
from pycni.cni.plugin import Context, PluginRef
from pycni.cni.runtime import NAME_PATTERN, Command, RuntimeArgs, env_text, is_valid_name

if TYPE_CHECKING:
    from pycni.cni.config import NetConf
    from pycni.cni.plugin import Delegate
    from pycni.cni.settings import Settings
    from pycni.cni.types import Result

    #: Builds the context of one call from its settings (the caller wires in its delegate).
    ContextFactory = Callable[[Settings], Context]

log = logging.getLogger("pycni.skel")


def run(
    plugin: PluginRef,
    env: Mapping[str, str],
    stdin: IO[bytes],
    stdout: IO[str],
    make_context: ContextFactory,
) -> int:
    """Run one CNI request; print its result or error on `stdout`; return the exit code.

    Every error object carries the config's `cniVersion` once the config names one, even when
    the config is otherwise invalid (spec: "Error" section).
    """
    cni_version: str | None = None
    try:
        decoded = _decode(_read_stdin(stdin))
        cni_version = _stated_version(decoded)
        command = _command(env)
        if command is Command.VERSION:
            _print(stdout, _version_answer(decoded))
            return 0
        rt = RuntimeArgs.from_env(command, env)  # environment errors first, as the reference skel
        conf_json = _require_config(decoded)
        cni_version = version.negotiate(conf_json.get("cniVersion"), conf_json.get("cniVersions"))
        check_min_version(command, cni_version)
        from pycni.cni.locks import attachment
        from pycni.cni.settings import Settings

        settings = Settings.from_env(env)
        with attachment(settings.run_dir, rt, conf_json) as locked_rt:  # never beside another request of it
            result = invoke(plugin, locked_rt, conf_json, cni_version, make_context(settings))
        if result is not None:
            from pycni.cni.types import render

            _print(stdout, render(result, cni_version))
        return 0
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        err = to_error(exc)
        if not isinstance(exc, CNIError):
            _log_unexpected(plugin, exc)
        _print(stdout, err.to_json(cni_version))
        return 1


def invoke(
    plugin: PluginRef,
    rt: RuntimeArgs,
    conf_json: dict[str, Any],
    cni_version: str,
    ctx: Context,
) -> Result | None:
    """Validate the config and call the verb; the ADD result in the newest model.

    In-process delegates (bridge -> host-local, multus -> its networks) come in here too, so
    the checks every config gets are here, not only on the runner's stdin path.
    """
    check_text(conf_json)
    conf = plugin.load_conf_model().load(conf_json, cni_version)
    ops = plugin.load_ops()
    apply_declared_rules(plugin, conf, rt, ctx)
    match rt.command:
        case Command.ADD:
            return ops.add(conf, rt, ctx)
        case Command.DEL:
            ops.delete(conf, rt, ctx)
        case Command.CHECK:
            ops.check(conf, rt, ctx)
        case Command.STATUS:
            ops.status(conf, rt, ctx)
        case Command.GC:
            ops.gc(conf, rt, ctx)
        case _:
            raise InvalidEnvironment(f"CNI_COMMAND {rt.command} is not a plugin verb")
    return None


def apply_declared_rules(plugin: PluginRef, conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    """The common rules `plugin` declares, applied before any of its verbs changes anything.

    Validate first, then touch the kernel: a type that delegates IPAM has its `ipam` section
    judged on every verb (a DEL, CHECK or GC of a config no ADD could have taken answers the
    same clean code 7), and on ADD what could not be printed is refused; a CHECK that compares
    against `prevResult` needs one.
    """
    if plugin.delegates_ipam:
        validate_ipam(ctx.delegate, conf, rt)
        if rt.command is Command.ADD:
            conf.validate_for_add()
    if plugin.needs_prev_result and rt.command is Command.CHECK:
        conf.require_prev_result()


def validate_ipam(delegate: Delegate, conf: NetConf, rt: RuntimeArgs) -> None:
    """Judge the network's `ipam` section as its plugin will, before anything else happens.

    Our own IPAM types load their config model; a foreign type must be a plain name found on
    CNI_PATH; an `ipam.type` naming the plugin itself would call it forever.
    """
    if conf.ipam is None or not conf.ipam.type:
        return
    if conf.ipam.type == conf.type:
        raise InvalidConfig(f"ipam.type {conf.type!r} names the plugin itself")
    delegate.validate(conf.ipam.type, conf.raw, rt)


def _log_unexpected(plugin: PluginRef, exc: BaseException) -> None:
    """One ERROR line, the traceback at DEBUG only: without a log file, logs go to stderr,
    which runtimes copy into their own logs and events, where a traceback does not belong."""
    text = str(exc).replace("\n", "\\n")
    log.error("unexpected failure in %s plugin: %s: %s", plugin.type, type(exc).__name__, text)
    log.debug("traceback of the unexpected failure in %s plugin", plugin.type, exc_info=exc)


def _command(env: Mapping[str, str]) -> Command:
    name = env_text(env, "CNI_COMMAND")
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


def _decode(raw: bytes) -> dict[str, Any] | DecodingFailure:
    """The config object, or the decoding error to raise once the environment has been checked.

    Strict (`strict_json`): UTF-8 only, no NaN/Infinity, nesting bounded, as libcni decodes.
    """
    try:
        conf = strict_json.loads(raw, "network config")
    except DecodingFailure as err:
        return err
    if not isinstance(conf, dict):
        return DecodingFailure("error parsing network config: expected a JSON object")
    return conf


def _stated_version(decoded: dict[str, Any] | DecodingFailure) -> str | None:
    """The config's own `cniVersion`, for error objects before negotiation succeeds."""
    stated = decoded.get("cniVersion") if isinstance(decoded, dict) else None
    return stated if isinstance(stated, str) and stated else None


def _require_config(decoded: dict[str, Any] | DecodingFailure) -> dict[str, Any]:
    """The config, with a network name libcni would accept (reference skel order: before the
    version). The name becomes part of file names: host-local's `dataDir/<name>`, result caches.
    """
    if isinstance(decoded, DecodingFailure):
        raise decoded
    name = decoded.get("name")
    if not name:
        raise InvalidConfig("missing network name")
    if not isinstance(name, str) or not is_valid_name(name):
        raise InvalidConfig(f"invalid network name {reprlib.repr(name)}: it must match {NAME_PATTERN}")
    return decoded


def check_text(conf_json: dict[str, Any]) -> None:
    """No string anywhere in the config may carry a NUL or a lone surrogate: no path, netlink
    attribute or file content can hold one, and each would fail deep in a verb (code 7 here)."""
    problem = strict_json.text_problem(conf_json)
    if problem:
        raise InvalidConfig(f"invalid network config: {problem}")


def _version_answer(decoded: dict[str, Any] | DecodingFailure) -> dict[str, Any]:
    """Echo the caller's version when we speak it (the Go skel always says its own)."""
    asked = decoded.get("cniVersion") if isinstance(decoded, dict) else None
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

"""Finding a network's config: in a NAD, in `confDir` by name, in a directory or a file.

Every config comes out as a network list (`{"cniVersion", "name", "plugins": [...]}`, a single
`.conf` becoming a list of one, as libcni reads it), with the version and name filled in where
the source left them out. A plugin `type` that could name a file outside the plugin directories,
or multus itself, is refused here, before anything runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycni.cni.errors import DecodingFailure, InvalidConfig

if TYPE_CHECKING:
    from pycni.k8s.objects import NetworkAttachmentDefinition, PodSource

CONF_SUFFIXES = (".conf", ".conflist", ".json")
LIST_KEYS = ("cniVersion", "cniVersions", "name", "disableCheck", "disableGC")
SELF_TYPES = ("multus", "multus-shim")


class NetworkNotFound(InvalidConfig):
    """A network the config or the pod names does not exist: the request's configuration is
    wrong (code 7), not multus (an internal error would say so)."""


@dataclass(frozen=True)
class Network:
    """A network ready to attach: its network-status name, its list, its device resource."""

    status_name: str
    conflist: dict[str, Any]
    resource_name: str = ""


def as_list(conf: dict[str, Any], default_version: str, default_name: str, where: str) -> dict[str, Any]:
    """`conf` as a network list, every plugin type checked; a missing version or name filled in."""
    if "plugins" in conf:
        listed = dict(conf)
    else:
        listed = {k: conf[k] for k in LIST_KEYS if k in conf}
        listed["plugins"] = [{k: v for k, v in conf.items() if k not in LIST_KEYS}]
    listed.setdefault("cniVersion", default_version)
    if not listed.get("name"):
        listed["name"] = default_name
    plugins = listed["plugins"]
    if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) for p in plugins):
        raise InvalidConfig(f"{where}: 'plugins' must be a non-empty list of configs")
    for index, plugin in enumerate(plugins):
        check_type(plugin.get("type"), where)
        _check_objects(plugin, f"{where}: plugins[{index}]")
    return listed


#: Keys multus reads or writes inside a plugin's config: each, when present, must be an object.
OBJECT_KEYS = ("capabilities", "args", "runtimeConfig")


def _check_objects(plugin: dict[str, Any], where: str) -> None:
    """`capabilities`, `args` (and its `cni`) and `runtimeConfig` are objects, or absent."""
    for key in OBJECT_KEYS:
        if plugin.get(key) is not None and not isinstance(plugin[key], dict):
            raise InvalidConfig(f"{where}: {key} must be a JSON object")
    args = plugin.get("args")
    if isinstance(args, dict) and args.get("cni") is not None and not isinstance(args["cni"], dict):
        raise InvalidConfig(f"{where}: args.cni must be a JSON object")


def check_type(plugin_type: Any, where: str) -> None:
    """A delegate type names an executable in binDir/CNI_PATH: no path parts, and not multus itself."""
    if not isinstance(plugin_type, str) or not plugin_type:
        raise InvalidConfig(f"{where}: a plugin has no type")
    if "/" in plugin_type or plugin_type in (".", "..") or ".." in plugin_type:
        raise InvalidConfig(f"{where}: plugin type {plugin_type!r} is not a plain executable name")
    if plugin_type in SELF_TYPES:
        raise InvalidConfig(f"{where}: a multus network cannot delegate to {plugin_type} itself")


def from_nad(nad: NetworkAttachmentDefinition, conf_dir: Path, default_version: str) -> Network:
    """A NAD's network: `spec.config`, else the config named like it in `confDir` (NPWG §3.4.1)."""
    where = f"NetworkAttachmentDefinition {nad.namespace}/{nad.name}"
    if nad.spec.config and nad.spec.config.strip():
        raw = _json_object(nad.spec.config, f"{where} spec.config")
    else:
        found = by_name(conf_dir, nad.name)
        if found is None:
            raise NetworkNotFound(
                f"{where} has no spec.config and {conf_dir} has no config named {nad.name!r}"
            )
        raw = found
    return Network(
        f"{nad.namespace}/{nad.name}", as_list(raw, default_version, nad.name, where), nad.resource_name
    )


def from_disk(ref: str, conf_dir: Path, default_version: str) -> Network | None:
    """`ref` as a file or directory path (when it has a '/'), else a config `name` in `confDir`."""
    if "/" in ref:
        path = Path(ref)
        if path.is_dir():
            files = conf_files(path)
            if not files:
                raise NetworkNotFound(f"directory {path} holds no CNI config")
            path = files[0]
        if not path.is_file():
            return None
        raw = _load(path)
    else:
        found = by_name(conf_dir, ref)
        if found is None:
            return None
        raw = found
    listed = as_list(raw, default_version, ref, f"network {ref}")
    return Network(str(listed["name"]), listed)


def resolve(
    ref: str, namespace: str, source: PodSource | None, conf_dir: Path, default_version: str
) -> Network:
    """A cluster or default network by reference: a NAD in `namespace` first, then the disk."""
    if source is not None and "/" not in ref:
        nad = source.nad(namespace, ref)
        if nad is not None:
            return from_nad(nad, conf_dir, default_version)
    network = from_disk(ref, conf_dir, default_version)
    if network is None:
        raise NetworkNotFound(
            f"network {ref!r} is neither a NAD in namespace {namespace!r}, a config in {conf_dir}, nor a path"
        )
    return network


def conf_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.suffix in CONF_SUFFIXES and p.is_file())
    except OSError:
        return []


def by_name(directory: Path, name: str) -> dict[str, Any] | None:
    """The config in `directory` whose `name` is `name`: conflists first, then .conf/.json (NPWG)."""
    files = conf_files(directory)
    for path in [p for p in files if p.suffix == ".conflist"] + [p for p in files if p.suffix != ".conflist"]:
        try:
            raw = _load(path)
        except DecodingFailure:
            continue
        if raw.get("name") == name:
            return raw
    return None


def _load(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DecodingFailure(f"{path}: {err.strerror}") from err
    return _json_object(raw, str(path))


def _json_object(text: str | bytes, where: str) -> dict[str, Any]:
    """A JSON object; bad UTF-8 and nesting too deep for the decoder are decoding errors too."""
    try:
        value = json.loads(text)
    except ValueError as err:  # UnicodeDecodeError included
        raise DecodingFailure(f"{where}: invalid JSON: {err}") from err
    except RecursionError:
        raise DecodingFailure(f"{where}: invalid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise DecodingFailure(f"{where}: expected a JSON object")
    return value

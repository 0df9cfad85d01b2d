"""Inputs for the runner, config-model and result fuzz tests: valid configs and their mutants.

A mutant keeps the shape of a valid config (the right keys) and changes values to the wrong
type or a wrong value, drops keys, or adds some. Every path a plugin may write to or read
from is pinned into the test's own directory afterwards (`pin_paths`), so a mutant that
happens to validate never touches the node's real state.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from pycni.cni.version import SUPPORTED_VERSIONS

NAME = "fuzznet"

#: JSON scalars, including the awkward ones (huge ints, NUL and lone surrogates in strings).
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.text(st.characters(codec=None, categories=("Cs", "Cc", "Zs")), max_size=4),
    st.sampled_from(["", "0", "-1", "1.0.0", "10.1.2.3", "10.1.2.0/24", "::1/128", "eth0", "x" * 300]),
)

#: Any JSON value, nested a few levels.
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


def ipam(data_dir: str = "/pinned") -> dict[str, Any]:
    return {
        "type": "host-local",
        "ranges": [[{"subnet": "10.250.0.0/24", "rangeStart": "10.250.0.10", "gateway": "10.250.0.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": data_dir,
    }


PREV_RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "mac": "0a:58:0a:fa:00:0a", "sandbox": "/run/netns/fuzz-none"}],
    "ips": [{"address": "10.250.0.10/24", "gateway": "10.250.0.1", "interface": 0}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.250.0.1"}],
    "dns": {"nameservers": ["10.250.0.1"]},
}


def base_configs() -> dict[str, dict[str, Any]]:
    """One valid config per registered plugin type."""
    veth = {"isGateway": True, "ipMasq": False, "mtu": 1400, "hairpinMode": False, "ipam": ipam()}
    bridge = {"type": "bridge", "bridge": "fzbr0", "vlan": 0, **veth, "prevResult": PREV_RESULT}
    return {
        "bridge": bridge,
        "vxlan": {"type": "vxlan", "vni": 4242, "port": 4789, "remotes": ["192.0.2.7"], **veth},
        "sriov": {
            "type": "sriov",
            "deviceID": "0000:03:02.1",
            "vlan": 100,
            "spoofchk": "on",
            "trust": "off",
            "maxTxRate": 100,
            "ipam": ipam(),
            "logFile": "/pinned",
        },
        "host-device": {"type": "host-device", "device": "fzdev0", "ipam": ipam()},
        "host-local": {"type": "host-local", "ipam": ipam()},
        "multus": {
            "type": "multus",
            "delegates": [{"cniVersion": "1.0.0", "name": "fzdel", **bridge}],
            "cniDir": "/pinned",
            "confDir": "/pinned",
            "logLevel": "error",
        },
    }


#: Keys naming a file or directory (or an API a plugin would talk to), and their pinned values
#: relative to the test's directory ("" means: off).
PATH_KEYS = {
    "dataDir": "data",
    "logFile": "log/plugin.log",
    "cniDir": "multus",
    "confDir": "conf",
    "deviceInfoDir": "devinfo",
    "deviceInfoFile": "devinfo/file.json",
    "podResourcesSocket": "podresources.sock",
    "resolvConf": "resolv.conf",
    "binDir": "bin",
    "readinessindicatorfile": "",
    "kubeconfig": "",
    "manifests": "",
}


def pin_paths(conf: Any, root: Path) -> Any:
    """`conf` with every path key pinned under `root`; plugin and IPAM sections get them all."""
    stack = [conf]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            pinned = (
                PATH_KEYS
                if "type" in item or item is conf
                else {k: PATH_KEYS[k] for k in item if k in PATH_KEYS}
            )
            for key, rel in pinned.items():
                item[key] = str(root / rel) if rel else ""
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return conf


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in `value` (dict keys and list indexes), parents before children."""
    out: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, sub in items:
        out.append((*prefix, key))
        out += _paths(sub, (*prefix, key))
    return out


def _wrong_values(current: Any) -> st.SearchStrategy[Any]:
    """Values of the wrong type or range for `current`, and arbitrary JSON."""
    near: list[Any] = [None, "", [], {}, True, 0, -1, 2**63, 1.5, "\x00", "\ud800", "x" * 70]
    if isinstance(current, str):
        near += [current + "\n", current + "\x00", current[:1], current * 20, current.upper()]
    elif isinstance(current, bool):
        near += ["true", "false", "yes", 1]
    elif isinstance(current, int):
        near += [str(current), current + 1, -current, current * 10**6, float(current)]
    elif isinstance(current, list):
        near += [current * 3, [current], [None, *current]]
    elif isinstance(current, dict):
        near += [list(current.values()), {k: None for k in current}]
    return st.one_of(st.sampled_from(near), json_values)


@st.composite
def mutants(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """`base` with one to four of its values replaced by wrong ones, keys dropped or added."""
    conf = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(conf)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = conf
        for key in path[:-1]:
            parent = parent[key]
        how = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if how == "drop":
            del parent[path[-1]]
        elif how == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(json_values)
        else:
            parent[path[-1]] = draw(_wrong_values(parent[path[-1]]))
    return conf


def config_of(plugin_type: str, cni_version: str = "1.0.0") -> dict[str, Any]:
    return {"cniVersion": cni_version, "name": NAME, **base_configs()[plugin_type]}


@st.composite
def near_valid_configs(draw: st.DrawFn, plugin_type: str) -> dict[str, Any]:
    """A valid config of `plugin_type` in any version, or a mutant of one."""
    conf = config_of(plugin_type, draw(st.sampled_from(SUPPORTED_VERSIONS)))
    return conf if draw(st.integers(0, 4)) == 0 else draw(mutants(conf))


def spoiled(text: str, cut: int) -> list[bytes]:
    """The JSON `text` spoiled the ways hostile callers do: constants, depth, encodings, cuts."""
    head, raw = text[:-1], text.encode()
    return [
        (head + ', "x": NaN}').encode(),
        (head + ', "x": -Infinity}').encode(),
        (head + ', "x": 1e999}').encode(),
        (head + ', "x": ' + "[" * 5000 + "]" * 5000 + "}").encode(),
        (head + ', "prevResult": ' + '{"a":' * 900 + "1" + "}" * 901).encode(),
        text.encode("utf-16"),
        text.encode("utf-32-le"),
        text.encode("utf-8-sig"),
        text[:cut].encode(),
        raw[:cut] + b"\xff" + raw[cut:],
        (text[:cut] + "\x00" + text[cut:]).encode(),
    ]


@st.composite
def text_mutants(draw: st.DrawFn, conf: dict[str, Any]) -> bytes:
    """The JSON text of `conf`, spoiled one way (`spoiled`)."""
    text = json.dumps(conf)
    variants = spoiled(text, draw(st.integers(0, len(text))))
    return variants[draw(st.integers(0, len(variants) - 1))]

"""Fuzzing the device plugin's `config.json` (sriov-network-device-plugin's format).

Arbitrary bytes and JSON shaped like `resourceList`/`selectors` go in; what comes out is a
validated model that discovery and pool matching can use without failing, or one `ConfigError`
naming the file, which the command line reports in one line and exit code 2 (no traceback).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pycni.device_plugin import cli
from pycni.hw.discovery import Device, discover
from pycni.hw.sysfs import SysFs
from pycni.k8s.objects import is_dns_subdomain
from pycni.k8s.pools.config import RESOURCE_NAME, ConfigError, PluginConfig, load_config, warn_unsupported
from pycni.k8s.pools.membership import assign, pools_of
from tests.helpers.fake_sysfs import build_sriov_node
from tests.helpers.fuzz import fuzz_settings

pytestmark = pytest.mark.fuzz

TEXT = st.text(st.sampled_from([*"aAz09-_.#,/:x \n\x00", "é"]), max_size=12)
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT)
ANY_JSON = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=10
)
STRINGS = st.lists(
    st.one_of(
        TEXT,
        st.sampled_from(
            ["8086", "0x15b3", "154c", "iavf", "vfio-pci", "ens1f0", "ens1f0#0-3", "ens1f0#4,5",
             "0000:3c:00.0#0-1", "ens1f0#0-99999999", "ens1f0#3-1", "ens1f0#", "#1", "0000:3b:02.0", "ether"]
        ),
    ),
    max_size=3,
)  # fmt: skip
SELECTOR_KEYS: dict[str, st.SearchStrategy[Any]] = {
    "vendors": STRINGS,
    "devices": STRINGS,
    "drivers": STRINGS,
    "pciAddresses": STRINGS,
    "acpiIndexes": STRINGS,
    "pfNames": STRINGS,
    "rootDevices": STRINGS,
    "linkTypes": STRINGS,
    "needVhostNet": st.booleans(),
    "isRdma": st.booleans(),
    "ddpProfiles": STRINGS,
    "pKeys": STRINGS,
    "vdpaType": TEXT,
    "auxTypes": STRINGS,
}


@st.composite
def selectors(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(SELECTOR_KEYS)), max_size=4, unique=True))
    return {
        k: draw(SELECTOR_KEYS[k] | ANY_JSON if draw(st.integers(0, 9)) == 0 else SELECTOR_KEYS[k])
        for k in keys
    }


@st.composite
def resource(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        entry["resourceName"] = draw(st.sampled_from(["sriov_a", "dpdk", "a-b"]) | TEXT)
    if draw(st.booleans()):
        entry["resourcePrefix"] = draw(
            st.sampled_from(["pycni.io", "intel.com", "../../x", "a/b", "A"]) | TEXT
        )
    if draw(st.booleans()):
        entry["deviceType"] = draw(st.sampled_from(["netDevice", "accelerator", "auxNetDevice"]) | TEXT)
    if draw(st.booleans()):
        entry["selectors"] = draw(st.one_of(selectors(), st.lists(selectors(), max_size=3), ANY_JSON))
    if draw(st.integers(0, 4)) == 0:
        entry[draw(st.sampled_from(["excludeTopology", "additionalInfo", "allocationPolicy", "x"]))] = draw(
            ANY_JSON
        )
    return entry


CONFIG_BYTES = st.one_of(
    st.lists(resource(), max_size=4).map(lambda rs: json.dumps({"resourceList": rs}).encode()),
    ANY_JSON.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["resourceList", "x"]), ANY_JSON).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
    st.integers(1, 5_000).map(lambda n: b'{"resourceList":' + b"[" * n),
)


@pytest.fixture(scope="module")
def devices(tmp_path_factory: pytest.TempPathFactory) -> list[Device]:
    """The default fake SR-IOV node's devices (4 PFs x 8 VFs), discovered once."""
    node = build_sriov_node(tmp_path_factory.mktemp("dp-fuzz") / "sys")
    found = discover(SysFs(node.sysfs.root))
    assert found
    return found


def _assert_usable(config: PluginConfig, devices: list[Device]) -> None:
    """What the service does with a config: name pools, match every device, log what it ignores."""
    names = set()
    for res in config.resource_list:
        assert RESOURCE_NAME.fullmatch(res.resource_name)
        assert res.resource_prefix is None or is_dns_subdomain(res.resource_prefix)
        names.add(f"{res.resource_prefix or 'pycni.io'}/{res.resource_name}")
    assert len(names) == len(config.resource_list)
    pools = pools_of(config, "pycni.io")
    assert all("/" not in pool.socket_name for pool in pools)
    assign(pools, devices)
    warn_unsupported(config)


@fuzz_settings()
@given(data=CONFIG_BYTES)
@example(
    data=json.dumps(
        {"resourceList": [{"resourceName": "a", "selectors": {"pfNames": ["p#0-99999999"]}}]}
    ).encode()
)
@example(data=json.dumps({"resourceList": [{"resourceName": "a\n"}]}).encode())
@example(data=json.dumps({"resourceList": [{"resourceName": "a", "resourcePrefix": "../../x"}]}).encode())
@example(data=json.dumps({"resourceList": [{"resourceName": "a", "additionalInfo": {"\n": None}}]}).encode())
@example(data=b"\xff\xfe{}")
@example(data=b"[" * 100_000)
def test_config(data: bytes, devices: list[Device], tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-config.json"
    path.write_bytes(data)
    try:
        config = load_config(path)
    except ConfigError as err:
        assert str(path) in str(err) and "\n" not in str(err).strip()
        return
    _assert_usable(config, devices)


def test_cli_reports_invalid_config_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each kind of invalid file: exit 2 and one line naming the problem on stderr, no traceback."""
    for body in (
        b"\xff\xfe",
        b"[" * 100_000,
        json.dumps({"resourceList": [{"resourceName": "a", "resourcePrefix": "../../x"}]}).encode(),
        json.dumps(
            {"resourceList": [{"resourceName": "a", "selectors": {"pfNames": ["p#0-99999999"]}}]}
        ).encode(),
    ):
        conf = tmp_path / "config.json"
        conf.write_bytes(body)
        logger = logging.getLogger("pycni")
        saved = (logger.handlers[:], logger.propagate, logger.level)
        try:
            assert cli.main(["--config", str(conf), "--metrics-address", ""]) == cli.EXIT_CONFIG
        finally:  # main() sets up its JSON logging on the shared logger
            logger.handlers[:], logger.propagate, logger.level = saved
        err = capsys.readouterr().err
        assert "invalid config" in err and "Traceback" not in err


def test_bad_default_prefix_is_a_config_error(tmp_path: Path) -> None:
    """Regression: `--resource-prefix ../x` became part of the socket's path."""
    conf = tmp_path / "config.json"
    conf.write_text(json.dumps({"resourceList": [{"resourceName": "a"}]}))
    with pytest.raises(ConfigError, match="resource prefix"):
        load_config(conf, "../x")


def test_huge_vf_range_is_refused_at_once(tmp_path: Path) -> None:
    """Regression: `pfNames: ["p#0-99999999"]` expanded into a set of 10^8 indexes."""
    conf = tmp_path / "config.json"
    conf.write_text(
        json.dumps({"resourceList": [{"resourceName": "a", "selectors": {"pfNames": ["p#0-99999999"]}}]})
    )
    with pytest.raises(ConfigError, match="above 65535"):
        load_config(conf)

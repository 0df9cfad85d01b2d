"""The CEL selectors of docs/dra.md and of the manifests, evaluated (cel-python) against the devices a
running driver publishes, with the attributes grouped by domain as the scheduler sees them: each
example selects what its text says, so the docs cannot drift from the attribute names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import celpy
import yaml
from celpy.adapter import json_to_cel

from tests.dra.node import DRIVER, DraNode

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "dra.md"
MANIFESTS = ROOT / "deploy" / "kubernetes"

#: Each documented selector and the devices of the test node (2 PFs x 8 VFs) it must select.
EXAMPLES = {
    'device.attributes["sriov.pycni.io"].resourceName == "intel.com/intel_sriov_netdevice"':
        {f"0000-3b-02-{i}" for i in range(6)} | {f"0000-3c-02-{i}" for i in range(4)},
    'device.attributes["sriov.pycni.io"].pfName == "ens1f1"': {f"0000-3c-02-{i}" for i in range(8)},
    'device.attributes["sriov.pycni.io"].numaNode == 0': {f"0000-3b-02-{i}" for i in range(8)},
    'device.attributes["sriov.pycni.io"].driver == "vfio-pci"':
        {"0000-3b-02-6", "0000-3b-02-7"} | {f"0000-3c-02-{i}" for i in range(4, 8)},
    'device.attributes["sriov.pycni.io"].healthy': {f"0000-3{b}-02-{i}" for b in "bc" for i in range(8)},
    'device.attributes["resource.kubernetes.io"].pciBusID == "0000:3b:02.0"': {"0000-3b-02-0"},
}  # fmt: skip


def cel_device(device: dict[str, Any]) -> Any:
    """The `device` variable of a DRA selector: driver, and attributes by domain then name."""
    by_domain: dict[str, dict[str, Any]] = {}
    for name, value in device["attributes"].items():
        domain, _, ident = name.rpartition("/")
        by_domain.setdefault(domain or DRIVER, {})[ident] = next(iter(value.values()))
    return json_to_cel({"driver": DRIVER, "attributes": by_domain})


def select(expression: str, devices: dict[str, dict[str, Any]]) -> set[str]:
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    return {name for name, device in devices.items() if program.evaluate({"device": cel_device(device)})}


def documented() -> list[str]:
    return [block.strip() for block in re.findall(r"```cel\n(.*?)```", DOC.read_text(), re.S)]


def cel_expressions(node: Any) -> list[str]:
    """Every `cel.expression` in a parsed manifest, in document order."""
    if isinstance(node, dict):
        own = [node["cel"]["expression"]] if isinstance(node.get("cel"), dict) else []
        return own + [e for key, value in node.items() if key != "cel" for e in cel_expressions(value)]
    if isinstance(node, list):
        return [e for item in node for e in cel_expressions(item)]
    return []


def manifest_expressions() -> list[str]:
    paths = [MANIFESTS / "deviceclass-sriov.yaml", MANIFESTS / "examples" / "pod-dra-vfs.yaml"]
    return [e for path in paths for e in cel_expressions(list(yaml.safe_load_all(path.read_text())))]


def test_every_documented_selector_is_an_example_here() -> None:
    assert documented() == list(EXAMPLES)


def test_documented_and_manifest_selectors_select_what_they_say(dnode: DraNode) -> None:
    dnode.start()
    devices = dnode.pool_devices()
    for expression, expected in EXAMPLES.items():
        assert select(expression, devices) == expected, expression
    class_expression, example = manifest_expressions()
    assert select(class_expression, devices) == set(devices)  # the DeviceClass takes every device
    assert select(example, devices) == set()  # the example's resource (intel.com/sriov_vfio) is not here
    assert (
        select(example.replace("intel.com/sriov_vfio", "intel.com/intel_sriov_dpdk"), devices)
        == EXAMPLES['device.attributes["sriov.pycni.io"].driver == "vfio-pci"']
    )

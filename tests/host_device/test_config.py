"""Config errors are code 7 and name what is wrong; nothing is touched."""

from __future__ import annotations

from typing import Any

import pytest

from tests.host_device.helpers import Node, conf


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({}, "specify one of device, hwaddr, kernelpath, pciBusID"),
        ({"device": "eth1", "hwaddr": "0a:00:00:00:00:01"}, "got device, hwaddr"),
        (
            {"pciBusID": "0000:03:00.1", "runtimeConfig": {"deviceID": "0000:03:00.2"}},
            "got pciBusID, runtimeConfig",
        ),
        ({"hwaddr": "not-a-mac"}, "is not a MAC address"),
        ({"kernelpath": "/etc/passwd"}, "must be an absolute path under /sys/devices/"),
        ({"kernelpath": "/sys/devices/../../etc"}, "must be an absolute path under /sys/devices/"),
        ({"pciBusID": "03:00.1"}, "is not a PCI address"),
    ],
)
def test_bad_selectors_are_config_errors(node: Node, keys: dict[str, Any], expected: str) -> None:
    pod = node.pod()
    out = node.cni("ADD", conf(**keys), pod)
    assert out.error_code == 7, out.stdout
    assert expected in out.json["msg"]
    assert node.state_files() == []


def test_same_pci_address_as_pci_bus_id_and_device_id_is_one_selector(node: Node) -> None:
    pod = node.pod()
    keys: dict[str, Any] = {"pciBusID": "0000:03:00.1", "runtimeConfig": {"deviceID": "0000:03:00.1"}}
    out = node.cni("ADD", conf(**keys), pod)
    assert out.error_code != 7
    assert "0000:03:00.1 is neither a PCI nor an auxiliary device" in out.json["msg"]


def test_del_and_gc_need_no_selector(node: Node) -> None:
    pod = node.pod()
    assert node.cni("DEL", conf(), pod).code == 0
    gc = {**conf(), "cni.dev/valid-attachments": []}
    assert node.runner("host-device", "GC", gc, netns_exec=node.ns.name, env=node.env).code == 0


def test_status_needs_a_writable_state_directory(node: Node) -> None:
    def status(env: dict[str, str]) -> int | None:
        out = node.runner("host-device", "STATUS", conf(), netns_exec=node.ns.name, env=env)
        return 0 if out.code == 0 else out.error_code

    assert status(node.env) == 0
    blocker = node.tmp / "not-a-directory"
    blocker.write_text("")
    assert status({**node.env, "PYCNI_STATE_DIR": str(blocker)}) == 50

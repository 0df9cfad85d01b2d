"""A failure injected at each step of ADD leaves the VF, its PF side and the IPAM store as they were.

The plugin runs in this process (the thread enters the node netns for the call), so a step can be
replaced by one that does its work and then fails, or fails halfway.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycni import registry
from pycni.hw import devinfo
from pycni.hw.vf_control import FileVfControl
from pycni.libcni import delegate
from pycni.net import iface, netns
from pycni.net.vf_state import VfSettings
from pycni.plugins.sriov import plugin
from pycni.plugins.sriov import pod as pod_side
from pycni.plugins.sriov.state import Stores
from tests.helpers.cni import Outcome, Runner
from tests.helpers.fake_sysfs import FakeVf
from tests.helpers.netns import Netns
from tests.sriov.helpers import SriovNode, conf, make_node, seeded_state, stand_in_mac


class Injected(RuntimeError):
    pass


def then_fail(real: Callable[..., Any]) -> Callable[..., Any]:
    def step(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise Injected(f"injected after {real.__name__}")

    return step


def fail(*args: Any, **kwargs: Any) -> Any:
    raise Injected("injected before the step")


def partial_pf_apply(real: Callable[..., Any]) -> Callable[..., Any]:
    """The first `set` (ADD's apply) gets only as far as the VLAN; later calls (restores) work."""
    calls: list[VfSettings] = []

    def step(self: FileVfControl, pf: str, vf: int, settings: VfSettings) -> None:
        calls.append(settings)
        if len(calls) == 1:
            real(
                self, pf, vf, VfSettings(vlan=settings.vlan, qos=settings.qos, vlan_proto=settings.vlan_proto)
            )
            raise Injected("injected after the VLAN was set")
        real(self, pf, vf, settings)

    return step


#: step -> (object, attribute, replacement factory)
STEPS: dict[str, tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = {
    "snapshot": (plugin, "snapshot", lambda real: fail),
    "records": (Stores, "claim", then_fail),
    "pf-side": (FileVfControl, "set", partial_pf_apply),
    "move": (pod_side, "move_in", then_fail),
    "mac": (pod_side, "set_mac", then_fail),
    "device-info": (devinfo, "write_if_absent", then_fail),
    "ipam": (delegate, "add", then_fail),
    "addresses": (plugin, "configure_iface", lambda real: then_fail(iface.configure_iface)),
}
VFIO_STEPS = ("snapshot", "records", "pf-side", "device-info", "ipam")


@pytest.fixture
def quiet_node(make_netns: Callable[..., Netns], bin_dir: Path, tmp_path: Path) -> SriovNode:
    return make_node(make_netns, Runner(bin_dir), bin_dir, tmp_path)


def in_process(node: SriovNode, command: str, cfg: dict[str, Any], pod: Netns) -> Outcome:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "ctr-a",
        "CNI_NETNS": pod.path,
        "CNI_IFNAME": "net1",
        **node.env,
    }
    out = io.StringIO()
    with netns.entered(node.ns.path):
        code = registry.run("sriov", env, io.BytesIO(json.dumps(cfg).encode()), out)
    return Outcome(code, out.getvalue(), "")


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def apply(step: str) -> None:
        owner, name, make = STEPS[step]
        monkeypatch.setattr(owner, name, make(getattr(owner, name)))

    yield apply


def assert_untouched(
    node: SriovNode, vf: FakeVf, pod: Netns, info: Path, before: dict[str, Any] | None
) -> None:
    if vf.netdev is not None:
        link = node.link(vf.netdev)
        assert link is not None, "the VF's netdev is not back in the node"
        assert before is not None
        assert (link["address"], link["mtu"], link.get("ifalias")) == (
            before["address"], before["mtu"], before.get("ifalias")
        )  # fmt: skip
        assert "UP" in link["flags"]
    assert pod.link_names() == {"lo"}
    assert node.pf_entry(vf) == seeded_state(vf.index)
    assert node.state_files() == [] and node.reservations() == []
    assert not info.exists()


def kernel_conf(node: SriovNode, vf: FakeVf, info: Path) -> dict[str, Any]:
    return conf(
        vf, node=node, mac="0a:58:00:00:00:81", vlan=81, vlanQoS=3, trust="off", spoofchk="on",
        link_state="enable", min_tx_rate=1, max_tx_rate=10, runtimeConfig={"CNIDeviceInfoFile": str(info)},
    )  # fmt: skip


@pytest.mark.parametrize("step", sorted(STEPS))
def test_kernel_mode_add_failing_at_each_step_changes_nothing(
    quiet_node: SriovNode, inject: Callable[[str], None], step: str
) -> None:
    node = quiet_node
    vf = node.kernel_vfs[1]
    before = node.link(vf.netdev or "")
    pod = node.pod()
    info = node.tmp / "devinfo-file"
    cfg = kernel_conf(node, vf, info)
    inject(step)

    out = in_process(node, "ADD", cfg, pod)

    assert out.code == 1 and "injected" in out.json["msg"], out.stdout
    assert_untouched(node, vf, pod, info, before)


@pytest.mark.parametrize("step", VFIO_STEPS)
def test_vfio_mode_add_failing_at_each_step_changes_nothing(
    quiet_node: SriovNode, inject: Callable[[str], None], step: str
) -> None:
    node = quiet_node
    vf = node.vfio_vfs[0]
    pod = node.pod()
    info = node.tmp / "devinfo-file"
    cfg = conf(
        vf, node=node, mac="0a:58:00:00:00:82", vlan=82, runtimeConfig={"CNIDeviceInfoFile": str(info)}
    )
    inject(step)

    out = in_process(node, "ADD", cfg, pod)

    assert out.code == 1 and "injected" in out.json["msg"], out.stdout
    assert_untouched(node, vf, pod, info, None)


def test_after_a_failed_add_the_vf_works_normally(
    quiet_node: SriovNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = quiet_node
    vf = node.kernel_vfs[2]
    pod = node.pod()
    info = node.tmp / "devinfo-file"
    cfg = kernel_conf(node, vf, info)
    real = iface.configure_iface
    monkeypatch.setattr(plugin, "configure_iface", then_fail(real))
    assert in_process(node, "ADD", cfg, pod).code == 1
    monkeypatch.setattr(plugin, "configure_iface", real)

    result = json.loads(in_process(node, "ADD", cfg, pod).stdout)
    assert result["interfaces"][0]["mac"] == "0a:58:00:00:00:81" and info.exists()
    assert in_process(node, "DEL", cfg, pod).code == 0
    back = node.link(vf.netdev or "")
    assert back is not None and back["address"] == stand_in_mac(vf.index)
    assert node.pf_entry(vf) == seeded_state(vf.index) and node.state_files() == []

"""Nothing a runtime or a config passes can make host-local touch files outside its dataDir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.ipam.conftest import Net


@pytest.mark.parametrize(
    ("name", "container_id", "ifname", "code"),
    [
        ("../escape", "ctr-0", "eth0", 7),
        ("net/../../escape", "ctr-0", "eth0", 7),
        (".hidden", "ctr-0", "eth0", 7),
        ("ipamnet", "../../escape", "eth0", 4),
        ("ipamnet", "ctr/../../x", "eth0", 4),
        ("ipamnet", "ctr-0", "../eth0", 4),
        ("ipamnet", "ctr-0", "..", 4),
    ],
)
def test_path_traversal_is_refused(
    net: Net, tmp_path: Path, name: str, container_id: str, ifname: str, code: int
) -> None:
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    conf = {**net.conf(), "name": name}
    for command in ("ADD", "DEL"):
        out = net.run(command, conf, container_id=container_id, ifname=ifname)
        assert out.code != 0 and out.error_code == code, out.stdout
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_store_files_are_not_world_readable(net: Net) -> None:
    address = net.run("ADD", net.conf()).ok()["ips"][0]["address"].split("/")[0]
    for path in net.dir.iterdir():
        if path.is_file() and path.name != "lock":
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path.name} is readable by others"
    assert (net.dir / address).read_bytes() == b"ctr-0\r\neth0"

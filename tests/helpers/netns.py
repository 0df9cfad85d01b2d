"""Throw-away network namespaces and links for tests, named uniquely, always removed.

Tests read kernel state through iproute2 (`ip -j`), a different path than the code under
test (pyroute2), so a bug in our netlink helpers cannot hide itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pycni.net.netns import setns


def unique(prefix: str, length: int = 15) -> str:
    """A name unique across parallel test workers, short enough for an ifname."""
    return (prefix + uuid.uuid4().hex)[:length]


def enter_netns(path: str) -> None:
    """Move this (still single-threaded) process into `path`; threads and children follow.

    For harnesses that play a node (the soak, the benches), never for a test in the shared
    pytest process.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)


def sh(*cmd: str, check: bool = True, netns: str | None = None, timeout: float = 60) -> str:
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(full)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


@dataclass(frozen=True)
class Netns:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        return sh(*cmd, check=check, netns=self.name, timeout=timeout)

    def ip(self, *args: str) -> Any:
        out = sh("ip", "-n", self.name, "-j", *args)
        return json.loads(out) if out.strip() else []

    def links(self) -> dict[str, dict[str, Any]]:
        return {link["ifname"]: link for link in self.ip("-d", "link", "show")}

    def link_names(self) -> set[str]:
        return set(self.links())

    def addrs(self, ifname: str) -> set[str]:
        info = self.ip("addr", "show", "dev", ifname)
        return {f"{a['local']}/{a['prefixlen']}" for i in info for a in i.get("addr_info", [])}

    def routes(self, family: str = "-4") -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.ip(family, "route", "show")
        return result

    def ping(self, address: str, count: int = 1, timeout: int = 5, extra: tuple[str, ...] = ()) -> bool:
        cmd = ["ping", "-c", str(count), "-W", str(timeout), *extra, address]
        proc = subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True, check=False)
        return proc.returncode == 0


def create_netns(prefix: str = "pyt") -> Netns:
    ns = Netns(unique(prefix))
    sh("ip", "netns", "add", ns.name)
    sh("ip", "-n", ns.name, "link", "set", "lo", "up")
    return ns


def delete_netns(ns: Netns) -> None:
    if os.path.exists(ns.path):
        sh("ip", "netns", "del", ns.name, check=False)


@contextmanager
def netns(prefix: str = "pyt") -> Iterator[Netns]:
    ns = create_netns(prefix)
    try:
        yield ns
    finally:
        delete_netns(ns)

"""The device-manager side of the device-plugin and plugin-watcher protocols, for these tests.

The kubelet stand-in itself (`FakeKubelet`, the plugin stubs) lives in `tests/helpers/kubelet.py`,
shared with the SR-IOV demo; this adds the plugin watcher's calls and a ListAndWatch reader.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc

from pycni.k8s.api import deviceplugin_v1beta1_pb2 as dp
from pycni.k8s.api import pluginregistration_v1_pb2 as reg
from pycni.k8s.api import pluginregistration_v1_pb2_grpc as reg_grpc
from tests.helpers.kubelet import FakeKubelet, plugin, plugin_channel, plugin_stub
from tests.helpers.poll import wait_until

__all__ = ["FakeKubelet", "Stream", "plugin", "plugin_channel", "plugin_stub", "wait_for", "watcher_register"]

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """A health change must show within a second: the default deadline here is tighter."""
    return wait_until(predicate, timeout, what)


def registration_client(socket: Path) -> Any:
    return reg_grpc.RegistrationStub(plugin_channel(socket))  # type: ignore[no-untyped-call]


def watcher_register(socket: Path) -> Any:
    """What the kubelet's plugin watcher does with a new socket: GetInfo, then report success."""
    stub = registration_client(socket)
    info = stub.GetInfo(reg.InfoRequest(), timeout=5)
    stub.NotifyRegistrationStatus(reg.RegistrationStatus(plugin_registered=True), timeout=5)
    return info


class Stream:
    """A ListAndWatch stream read by a thread into a queue, so tests read it with a deadline."""

    def __init__(self, socket: Path) -> None:
        self._channel = plugin_channel(socket)
        self._call = plugin_stub(self._channel).ListAndWatch(dp.Empty())
        self._queue: queue.Queue[Any] = queue.Queue()
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for response in self._call:
                self._queue.put(response)
        except grpc.RpcError:
            pass
        finally:
            self.ended.set()

    def next(self, timeout: float = 5.0) -> dict[str, str]:
        """The next device list as {ID: health}."""
        response = self._queue.get(timeout=timeout)
        return {d.ID: d.health for d in response.devices}

    def next_raw(self, timeout: float = 5.0) -> Any:
        return self._queue.get(timeout=timeout)

    def until(self, predicate: Callable[[dict[str, str]], bool], timeout: float = 1.0) -> dict[str, str]:
        """Reads updates until one satisfies `predicate`; fails if none does within `timeout`."""
        deadline = time.monotonic() + timeout
        seen = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching ListAndWatch update within {timeout}s; last: {seen}")
            try:
                seen = self.next(remaining)
            except queue.Empty:
                continue
            if predicate(seen):
                return seen

    def close(self) -> None:
        self._call.cancel()
        self._channel.close()


def iter_sockets(directory: Path) -> Iterator[Path]:
    return iter(sorted(p for p in directory.glob("*.sock") if p.name != "kubelet.sock"))

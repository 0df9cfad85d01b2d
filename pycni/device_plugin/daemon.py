"""The node daemon: one event loop that keeps pools, servers and registrations in step with the node.

Everything that can change the answer is an event on one selector: inotify on the socket directory
(kubelet restarts, our socket removed), on the config file's directory, and on the sysfs PCI
directories; netlink link events (carrier, netdevs appearing or vanishing); kernel uevents for PCI
and net (hot-plug, driver rebinds, `sriov_numvfs`). Each burst of events leads, after a short
debounce, to one `reconcile`: rediscover, reassign, re-evaluate health, and push changed pools to
their ListAndWatch streams. Nothing polls on a timer; only a failed Register is retried with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycni.cni.sysfs import SysFs
from pycni.device_plugin import files, inotify
from pycni.device_plugin.allocate import cdi_spec
from pycni.device_plugin.config import (
    DEFAULT_PREFIX,
    ConfigError,
    PluginConfig,
    load_config,
    warn_unsupported,
)
from pycni.device_plugin.discovery import Device, discover, remember
from pycni.device_plugin.pools import Pool, PoolDevice, assign, health, pools_of
from pycni.device_plugin.registration import KUBELET_SOCKET, RegistrationError, register
from pycni.device_plugin.server import Outputs, PoolServer, PoolState
from pycni.device_plugin.watch import Sources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    config_path: Path
    resource_prefix: str = DEFAULT_PREFIX
    sysfs_root: Path = Path("/sys")
    kubelet_dir: Path = Path("/var/lib/kubelet/device-plugins")
    plugins_registry_dir: Path = Path("/var/lib/kubelet/plugins_registry")
    devinfo_dir: Path = Path("/var/run/k8s.cni.cncf.io/devinfo/dp")
    cdi_dir: Path = Path("/var/run/cdi")
    use_cdi: bool = False
    links_netns: str | None = None
    use_netlink: bool = True
    use_udev: bool = True
    debounce: float = 0.02


class Daemon:
    def __init__(self, opts: Options, config: PluginConfig) -> None:
        self.opts = opts
        self.config = config
        self.sysfs = SysFs(opts.sysfs_root)
        self.watcher_mode = opts.plugins_registry_dir.is_dir()
        self.socket_dir = opts.plugins_registry_dir if self.watcher_mode else opts.kubelet_dir
        self.states: dict[str, PoolState] = {}
        self.servers: dict[str, PoolServer] = {}
        self.registered: dict[str, bool] = {}
        self._due: dict[str, tuple[float, float]] = {}  # resource -> (next attempt, backoff)
        self._known: dict[str, Device] = {}
        self._in_use: set[str] = set()
        self._moved_out: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sources: Sources | None = None
        self.on_reconcile: Callable[[], None] | None = None  # tests: observe passes

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Opens event sources, discovers, serves every pool and (kubelet.sock mode) registers."""
        self.opts.devinfo_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._sources = Sources.open(self.opts, self.socket_dir)
        log.info(
            "starting",
            extra={
                "mode": "plugins_registry" if self.watcher_mode else "kubelet.sock",
                "socket_dir": str(self.socket_dir),
                "sysfs": str(self.opts.sysfs_root),
            },
        )
        self.reconcile()

    def request_stop(self) -> None:
        """Safe from a signal handler or another thread."""
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def run(self) -> None:
        """The event loop; returns after `request_stop`, having shut everything down."""
        assert self._sources is not None, "start() first"
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        for fileobj, tag in self._sources.selectables():
            sel.register(fileobj, selectors.EVENT_READ, tag)
        dirty_at: float | None = None
        try:
            while not self._stop.is_set():
                self._register_due()
                timeout = self._next_timeout(dirty_at)
                for key, _ in sel.select(timeout):
                    if key.data == "wake":
                        _drain(self._wake_r)
                    elif self._handle(key.data) and dirty_at is None:
                        dirty_at = time.monotonic() + self.opts.debounce
                if dirty_at is not None and time.monotonic() >= dirty_at and not self._stop.is_set():
                    dirty_at = None
                    self.reconcile()
        finally:
            sel.close()
            self.shutdown()

    def shutdown(self) -> None:
        """Stop serving, remove our sockets, device-info files and CDI specs."""
        for resource in list(self.servers):
            self._drop_pool(resource)
        if self._sources is not None:
            self._sources.close()
            self._sources = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        log.info("stopped")

    # -- events --------------------------------------------------------------------------------
    def _handle(self, tag: Any) -> bool:
        """Handles one readable source; True when the node view must be re-read."""
        assert self._sources is not None
        if tag == "inotify":
            dirty = False
            for event in self._sources.read_inotify():
                dirty |= self._on_fs_event(event)
            return dirty
        return self._sources.drain(tag)

    def _on_fs_event(self, event: inotify.Event) -> bool:
        if event.directory == self.socket_dir:
            self._on_socket_dir_event(event)
            return False
        if event.directory == self.opts.config_path.parent:
            self._reload_config()
            return False
        return True  # a sysfs directory changed

    def _on_socket_dir_event(self, event: inotify.Event) -> None:
        if not self.watcher_mode and event.name == KUBELET_SOCKET and event.appeared:
            log.info("kubelet.sock re-created: re-registering every pool")
            now = time.monotonic()
            self._due.update({res: (now, 0.05) for res in self.servers})
            return
        for resource, server in list(self.servers.items()):
            if event.name == server.socket_path.name and event.vanished and not server.socket_path.exists():
                log.info("our socket was removed: serving anew", extra={"resource": resource})
                server.stop(remove_socket=False)
                self._serve(self.states[resource])

    def _reload_config(self) -> None:
        try:
            config = load_config(self.opts.config_path, self.opts.resource_prefix)
        except ConfigError as err:
            log.error("config change rejected, keeping the running config", extra={"error": str(err)})
            return
        if config == self.config:
            return
        log.info("config changed", extra={"pools": [r.resource_name for r in config.resource_list]})
        warn_unsupported(config)
        self.config = config
        self.reconcile()

    # -- the reconcile pass --------------------------------------------------------------------
    def reconcile(self) -> None:
        assert self._sources is not None
        links = self._sources.links
        exclude = links.default_route_netdevs() if links else set()
        devices = remember(discover(self.sysfs, exclude), self._known)
        self._known = {d.address: d for d in devices}
        table = links.links() if links else None
        pools = pools_of(self.config, self.opts.resource_prefix)
        assignment = assign(pools, devices)
        for resource in set(self.servers) - set(assignment):
            self._drop_pool(resource)
        for pool in pools:
            members = [PoolDevice(d, health(d, table, self._track_use(d))) for d in assignment[pool.resource]]
            state = self.states.get(pool.resource)
            if state is None:
                state = self.states[pool.resource] = PoolState(pool)
                state.update(pool, members)
                self._serve(state)
            elif state.update(pool, members):
                self._log_pool(pool, members)
            files.remove_devinfo(
                self.opts.devinfo_dir, pool.resource, keep=[m.device.address for m in members]
            )
            if self.opts.use_cdi:
                files.write_cdi_spec(
                    self.opts.cdi_dir, pool.resource, cdi_spec(pool, [m.device for m in members])
                )
        if self.on_reconcile is not None:
            self.on_reconcile()

    def _track_use(self, dev: Device) -> bool:
        """Allocated VFs whose netdev left the host are in a pod, not broken; back home means released."""
        with self._lock:
            if dev.address not in self._in_use:
                return False
            if dev.netdevs and not dev.netdevs_now:
                self._moved_out.add(dev.address)
            elif dev.address in self._moved_out:
                self._moved_out.discard(dev.address)
                self._in_use.discard(dev.address)
            return True

    def mark_allocated(self, pool: Pool, ids: list[str]) -> None:
        with self._lock:
            self._in_use.update(ids)

    def _log_pool(self, pool: Pool, members: list[PoolDevice]) -> None:
        unhealthy = {m.device.address: m.unhealthy for m in members if not m.healthy}
        log.info(
            "pool updated", extra={"resource": pool.resource, "devices": len(members), "unhealthy": unhealthy}
        )

    # -- serving and registration --------------------------------------------------------------
    def _serve(self, state: PoolState) -> None:
        pool = state.pool
        outputs = Outputs(self.opts.devinfo_dir, self.opts.use_cdi, self.mark_allocated)
        server = PoolServer(
            state, self.socket_dir / pool.socket_name, outputs, self._on_status if self.watcher_mode else None
        )
        server.start()
        self.servers[pool.resource] = server
        self.registered[pool.resource] = False
        if not self.watcher_mode:
            self._due[pool.resource] = (time.monotonic(), 0.05)
            self._register_due()

    def _on_status(self, pool: Pool, registered: bool, error: str) -> None:
        self.registered[pool.resource] = registered
        if registered:
            log.info("kubelet registered the pool", extra={"resource": pool.resource})
        else:
            log.error("kubelet refused the pool", extra={"resource": pool.resource, "error": error})

    def _register_due(self) -> None:
        now = time.monotonic()
        for resource, (when, backoff) in list(self._due.items()):
            if when > now or resource not in self.servers:
                continue
            try:
                register(self.opts.kubelet_dir, self.states[resource].pool)
            except RegistrationError as err:
                log.warning(
                    "registration failed, will retry", extra={"resource": resource, "error": str(err)}
                )
                self._due[resource] = (now + backoff, min(backoff * 2, 5.0))
                continue
            del self._due[resource]
            self.registered[resource] = True
            log.info("registered with kubelet", extra={"resource": resource})

    def _next_timeout(self, dirty_at: float | None) -> float | None:
        deadlines = [when for when, _ in self._due.values()]
        if dirty_at is not None:
            deadlines.append(dirty_at)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _drop_pool(self, resource: str) -> None:
        server = self.servers.pop(resource, None)
        state = self.states.pop(resource, None)
        self._due.pop(resource, None)
        self.registered.pop(resource, None)
        if state is not None:
            state.close()
        if server is not None:
            server.stop(remove_socket=True)
        files.remove_devinfo(self.opts.devinfo_dir, resource)
        if self.opts.use_cdi:
            files.remove_cdi_spec(self.opts.cdi_dir, resource)
        log.info("pool removed", extra={"resource": resource})


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass

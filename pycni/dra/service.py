"""The DRA driver: one event loop keeping the published devices, their health and the two sockets
in step with the node, a publisher thread for the API server, and gRPC threads for kubelet.

The loop watches what the device plugin watches (sysfs through inotify and udev, link state through
netlink, the config file's directory) plus the registry and plugin directories and their parents:
our socket removed, or its directory removed and made again (a kubelet restart that wipes its
registry), gets the socket served anew, which kubelet's plugin watcher registers again. A burst of
events is debounced into one pass: a full rescan (devices, pools, health) or, after link events and
claims prepared or unprepared, health only. Each pass updates the inventory (waking health streams
at once) and hands the device list to the publisher. Nothing polls on a timer.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pycni.cni.files import make_private_dirs
from pycni.dra import checkpoint
from pycni.dra.devices import DraDevice, config_problems, device_name
from pycni.dra.inventory import Inventory
from pycni.dra.metrics import DraMetrics
from pycni.dra.options import Options
from pycni.dra.prepare import Preparer
from pycni.dra.publisher import Publisher
from pycni.dra.server import SocketServer, plugin_services, registration_services
from pycni.dra.slices import device_entry
from pycni.hw import inotify
from pycni.hw.discovery import Device, discover, remember, with_netdevs_now
from pycni.hw.events import HEALTH, RESCAN, EventLoop, Sources
from pycni.hw.linkwatch import LinkState
from pycni.hw.sysfs import SysFs
from pycni.k8s.apiserver import ApiServer
from pycni.k8s.pools.config import ConfigError, PluginConfig, reload_config
from pycni.k8s.pools.membership import assign, health, pools_of
from pycni.k8s.resourceapi import ResourceApi

log = logging.getLogger(__name__)

PLUGIN_WORKERS = 8
#: A socket or checkpoint that could not be restored (its directory was going) is tried again after this.
REPAIR_RETRY = 0.1
REGISTRATION_WORKERS = 2


class DraDriverService:
    """`start` loads state, discovers, publishes and serves; `run` is the loop until `request_stop`."""

    def __init__(self, opts: Options, config: PluginConfig, api: ResourceApi | None = None) -> None:
        self.opts, self.config = opts, config
        self.sysfs = SysFs(opts.sysfs_root)
        self.api = api or ResourceApi(ApiServer(opts.kubeconfig, opts.env, field_manager=opts.driver_name))
        self.inventory = Inventory()
        self.preparer = Preparer(
            opts.driver_name, opts.node_name, opts.cdi_dir, opts.checkpoint_path,
            self.inventory.devices, self.api.claim, self.request_refresh,
        )  # fmt: skip
        self.metrics = DraMetrics(lambda: self.inventory.snapshot()[1], self.preparer.count)
        self.publisher = Publisher(self.api, opts.driver_name, opts.node_name, self._on_published)
        self.registered = False
        self.on_reconcile: Callable[[], None] | None = None  # tests: observe passes
        self._known: dict[str, Device] = {}
        self._assignment: dict[str, list[Device]] = {}
        self._loop = EventLoop(opts.debounce)
        self._refresh = threading.Event()
        self._links_changed = False  # since the last pass: netlink or udev said so
        self._links: dict[str, LinkState] | None = None  # the link table of the last pass
        self._repair_at: float | None = None  # when to try restoring our sockets again
        self._sources: Sources | None = None
        self._plugin: SocketServer | None = None
        self._registration: SocketServer | None = None
        self._running = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        make_private_dirs(self.opts.plugin_dir)
        self.opts.registry_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.adopt(self.opts.legacy_checkpoint_path, self.opts.checkpoint_path)
        self.preparer.load()
        self._sources = Sources.open(
            self.opts.sysfs_root,
            self.opts.watched_dirs(),
            links_netns=self.opts.links_netns,
            use_netlink=self.opts.use_netlink,
            use_udev=self.opts.use_udev,
        )
        self.reconcile()
        self.preparer.restore_specs()
        self.publisher.start()
        self._serve_plugin()
        self._serve_registration()
        # What start-up made (modules, config, devices) lives as long as the process: out of the
        # collector's sight, a full collection no longer walks it (25-50 ms, stalling a Prepare).
        gc.freeze()
        log.info("start-up objects frozen", extra={"objects": gc.get_freeze_count()})

    def request_stop(self) -> None:
        """Safe from a signal handler or another thread."""
        self._loop.request_stop()

    def request_refresh(self) -> None:
        """Claims were prepared or unprepared: which devices are in use changed (gRPC threads)."""
        self._refresh.set()
        self._loop.wake()

    def run(self) -> None:
        assert self._sources is not None, "start() first"
        self._running = True
        try:
            self._loop.run(
                self._sources,
                self._handle,
                self._apply,
                deadline=lambda: self._repair_at,
                tick=self._repair_due,
            )
        finally:
            self._running = False
            self.shutdown()

    def _apply(self, rescan: bool) -> None:
        """A pass: rescan; or, after link events, fresh link state; or, when only claims were
        prepared or unprepared, the state of the last pass judged again (no sysfs or netlink)."""
        if rescan:
            self.reconcile()
        elif self._links_changed:
            self.refresh_health()
        else:
            self._evaluate(self._links)
        self._links_changed = False

    def shutdown(self) -> None:
        """Leaves kubelet (registration socket first), stops serving and publishing. Keeps the CDI
        specs and the checkpoint: running pods' containers still need them."""
        for server in (self._registration, self._plugin):
            if server is not None:
                server.stop(remove_socket=True)
        self._registration = self._plugin = None
        self.inventory.close()
        self.publisher.stop()
        if self._sources is not None:
            self._sources.close()
            self._sources = None
        self._loop.close()
        log.info("stopped")

    # -- events --------------------------------------------------------------------------------
    def _handle(self, tag: Any) -> str | None:
        assert self._sources is not None
        if tag == "wake":
            if self._refresh.is_set():
                self._refresh.clear()
                return HEALTH
            return None
        if tag == "inotify":
            return self._on_fs_events(self._sources.read_inotify())
        if self._sources.drain(tag):
            self._links_changed = True
            return HEALTH if tag == "netlink" else RESCAN
        return None

    def _on_fs_events(self, events: list[inotify.Event]) -> str | None:
        """RESCAN when sysfs changed; our directories and the config are dealt with here, once a
        batch. The checkpoint is written in a directory the loop does not watch, so a Prepare or
        Unprepare wakes it only to judge the devices in use again (`request_refresh`)."""
        sockets = set(self.opts.socket_dirs())
        config_dir = self.opts.config_path.parent.absolute()
        ours = [e for e in events if e.directory in sockets or e.directory == config_dir]
        if any(e.directory in sockets for e in ours):
            self._check_sockets()
        if any(e.directory == config_dir for e in ours):
            self._reload_config()
        return RESCAN if len(ours) < len(events) else None

    def _check_sockets(self) -> None:
        """Repairs what a removal took; one that fails half-way (the directory is still being
        removed) is tried again shortly, as no further event may come."""
        try:
            self._repair()
        except OSError as err:
            log.warning("cannot restore our sockets yet, will retry", extra={"error": str(err)})
            self._repair_at = time.monotonic() + REPAIR_RETRY
        else:
            self._repair_at = None

    def _repair_due(self) -> None:
        if self._repair_at is not None and time.monotonic() >= self._repair_at:
            self._check_sockets()

    def _repair(self) -> None:
        """Serves a socket anew when its file (or directory) is gone; re-watches re-made directories."""
        assert self._sources is not None
        for directory in self.opts.watched_dirs():
            if directory.is_dir() and not self._sources.inotify.watching(directory):
                self._sources.inotify.watch(directory)
        if self._plugin is not None and not self._plugin.current():
            log.info("plugin socket gone: serving anew", extra={"socket": str(self.opts.plugin_socket)})
            make_private_dirs(self.opts.plugin_dir)
            self._plugin.stop(remove_socket=False)
            self._serve_plugin()
        self.preparer.restore_checkpoint()
        if self._registration is not None and not self._registration.current():
            log.info(
                "registration socket gone: serving anew", extra={"socket": str(self.opts.registration_socket)}
            )
            self.registered = False
            self.opts.registry_dir.mkdir(parents=True, exist_ok=True)
            self._registration.stop(remove_socket=False)
            self._serve_registration()

    def _reload_config(self) -> None:
        config = reload_config(self.opts.config_path, self.opts.resource_prefix, self.config, self._check)
        if config is not None:
            self.config = config
            self.reconcile()

    def _check(self, config: PluginConfig) -> None:
        problems = config_problems(pools_of(config, self.opts.resource_prefix))
        if problems:
            raise ConfigError("; ".join(problems))

    # -- passes --------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Full pass: rediscover, reassign to pools, re-evaluate health, publish."""
        assert self._sources is not None
        links = self._sources.links
        exclude = links.default_route_netdevs() if links else set()
        devices = remember(discover(self.sysfs, exclude), self._known)
        self._known = {d.address: d for d in devices}
        self._assignment = assign(pools_of(self.config, self.opts.resource_prefix), devices)
        self._evaluate(links.links() if links else None)

    def refresh_health(self) -> None:
        """Health only: the same devices with fresh link state and netdev presence."""
        assert self._sources is not None
        for resource, devices in self._assignment.items():
            self._assignment[resource] = [with_netdevs_now(self.sysfs, d) for d in devices]
        links = self._sources.links
        self._evaluate(links.links() if links else None)

    def _evaluate(self, table: dict[str, LinkState] | None) -> None:
        self._links = table
        prepared = self.preparer.prepared_devices()
        pools = {p.resource: p for p in pools_of(self.config, self.opts.resource_prefix)}
        devices: dict[str, DraDevice] = {}
        for resource, members in self._assignment.items():
            for dev in members:
                name = device_name(dev.address)
                devices[name] = DraDevice(name, dev, pools[resource], health(dev, table, name in prepared))
        unpooled = frozenset(device_name(a) for a in self._known) - set(devices)
        if self.inventory.update(devices, unpooled, prepared):
            unhealthy = {n: d.unhealthy for n, d in devices.items() if not d.healthy}
            log.info("devices evaluated", extra={"devices": len(devices), "unhealthy": unhealthy})
        self.publisher.publish([device_entry(devices[n], self.opts.driver_name) for n in sorted(devices)])
        if self.on_reconcile is not None:
            self.on_reconcile()

    # -- serving -------------------------------------------------------------------------------
    def _serve_plugin(self) -> None:
        services = plugin_services(self.preparer, self.inventory, self.opts.node_name, self.metrics)
        self._plugin = SocketServer(self.opts.plugin_socket, services, PLUGIN_WORKERS)
        self._plugin.start()

    def _serve_registration(self) -> None:
        services = registration_services(self.opts.driver_name, self.opts.plugin_socket, self._on_status)
        self._registration = SocketServer(self.opts.registration_socket, services, REGISTRATION_WORKERS)
        self._registration.start()

    def _on_status(self, registered: bool, error: str) -> None:
        self.registered = registered
        self.metrics.registrations.labels("success" if registered else "failure").inc()
        if registered:
            log.info("kubelet registered the driver", extra={"driver": self.opts.driver_name})
            self.publisher.resync()  # a restarted kubelet wipes the node's slices before it registers us
        else:
            log.error("kubelet refused the driver", extra={"driver": self.opts.driver_name, "error": error})

    def _on_published(self, ok: bool) -> None:
        self.metrics.publications.labels("success" if ok else "failure").inc()

    # -- probes --------------------------------------------------------------------------------
    def healthy(self) -> bool:
        """Liveness: the event loop is running (it stops only on request)."""
        return self._running

    def ready(self) -> bool:
        """Readiness: kubelet registered us and the API server holds the current slices."""
        return self._running and self.registered and self.publisher.in_sync

"""The device-plugin service: one event loop keeping pools, servers and registrations in step with the node.

Everything that can change the answer is an event on one selector: inotify on the socket directory
(kubelet restarts, our socket removed), on the config file's directory, and on the sysfs PCI
directories; netlink link events (carrier, netdevs appearing or vanishing); kernel uevents for PCI
and net (hot-plug, driver rebinds, `sriov_numvfs`). Each burst of events leads, after a short
debounce, to one `reconcile`: rediscover, reassign, re-evaluate health, and push changed pools to
their ListAndWatch streams. Nothing polls on a timer; only a failed Register is retried with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pycni.device_plugin import cdi
from pycni.device_plugin.allocate import cdi_spec
from pycni.device_plugin.metrics import DevicePluginMetrics
from pycni.device_plugin.options import Options
from pycni.device_plugin.pools import InUse
from pycni.device_plugin.registration import Registrar
from pycni.device_plugin.server import Outputs, PoolServer, PoolState
from pycni.hw import devinfo, inotify
from pycni.hw.discovery import Device, discover, remember, with_netdevs_now
from pycni.hw.events import HEALTH, RESCAN, EventLoop, Sources
from pycni.hw.linkwatch import LinkState
from pycni.hw.sysfs import SysFs
from pycni.k8s.paths import KUBELET_SOCKET
from pycni.k8s.pools.config import PluginConfig, reload_config
from pycni.k8s.pools.membership import Pool, PoolDevice, assign, health, pools_of

log = logging.getLogger(__name__)


class DevicePluginService:
    """Everything the device plugin runs on a node: event sources, a gRPC server per pool, registrations.

    `start` serves every pool; `run` is the event loop until `request_stop`, then shuts down.
    """

    def __init__(self, opts: Options, config: PluginConfig) -> None:
        self.opts = opts
        self.config = config
        self.sysfs = SysFs(opts.sysfs_root)
        self.watcher_mode = opts.plugins_registry_dir.is_dir()
        self.socket_dir = opts.plugins_registry_dir if self.watcher_mode else opts.kubelet_dir
        self.states: dict[str, PoolState] = {}
        self.servers: dict[str, PoolServer] = {}
        self.metrics = DevicePluginMetrics(self.pool_devices)
        self.registrar = Registrar(opts.kubelet_dir, self.metrics.registration)
        self.registered = self.registrar.registered
        self._known: dict[str, Device] = {}
        self._assignment: dict[str, list[Device]] = {}
        self.in_use = InUse()
        self._loop = EventLoop(opts.debounce)
        self._sources: Sources | None = None
        self.on_reconcile: Callable[[], None] | None = None  # tests: observe passes
        self._running = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Opens event sources, discovers, serves every pool and (kubelet.sock mode) registers."""
        devinfo.make_dir(self.opts.devinfo_dir)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._sources = Sources.open(
            self.opts.sysfs_root,
            [self.socket_dir, self.opts.config_path.parent],
            links_netns=self.opts.links_netns,
            use_netlink=self.opts.use_netlink,
            use_udev=self.opts.use_udev,
        )
        log.info(
            "starting",
            extra={
                "mode": "plugins_registry" if self.watcher_mode else "kubelet.sock",
                "socket_dir": str(self.socket_dir),
                "sysfs": str(self.opts.sysfs_root),
            },
        )
        self.restore_allocations()
        self.reconcile()

    def restore_allocations(self) -> None:
        """What pods already hold, from the kubelet (its pod-resources API), marked in use.

        The allocated set lives in memory; after a restart a VF whose netdev is in a pod, or is
        about to be moved there, would otherwise count as free and its netdev's absence as an
        outage. Without the API the plugin starts anyway: such a VF is then learnt at its next
        Allocate, as before.
        """
        socket = self.opts.pod_resources_socket
        if socket is None:
            return
        from pycni.cni.errors import TryAgainLater
        from pycni.k8s import podresources

        try:
            held = podresources.node_devices(socket)
        except TryAgainLater as err:
            log.warning("cannot read the devices pods hold from the kubelet", extra={"error": err.msg})
            return
        ours = {pool.resource for pool in pools_of(self.config, self.opts.resource_prefix)}
        restored = sorted(dev for resource, ids in held.items() if resource in ours for dev in ids)
        self.in_use.restore(restored)
        log.info("devices held by pods, read back from the kubelet", extra={"devices": restored})

    def request_stop(self) -> None:
        """Safe from a signal handler or another thread."""
        self._loop.request_stop()

    def run(self) -> None:
        """The event loop; returns after `request_stop`, having shut everything down."""
        assert self._sources is not None, "start() first"
        self._running = True
        try:
            self._loop.run(
                self._sources,
                self._handle,
                self._apply,
                deadline=self.registrar.next_deadline,
                tick=lambda: self.registrar.run_due(self._pools()),
            )
        finally:
            self._running = False
            self.shutdown()

    def _apply(self, rescan: bool) -> None:
        self.metrics.reconciles.labels("rescan" if rescan else "health").inc()
        self.reconcile() if rescan else self.refresh_health()

    def shutdown(self) -> None:
        """Stop serving, remove our sockets, device-info files and CDI specs."""
        for resource in list(self.servers):
            self._drop_pool(resource)
        if self._sources is not None:
            self._sources.close()
            self._sources = None
        self._loop.close()
        log.info("stopped")

    # -- events --------------------------------------------------------------------------------
    def _handle(self, tag: Any) -> str | None:
        """Handles one readable source: RESCAN (sysfs may differ), HEALTH (links changed) or None."""
        assert self._sources is not None
        if tag == "wake":
            return None
        if tag == "inotify":
            change = None
            for event in self._sources.read_inotify():
                if self._on_fs_event(event):
                    change = RESCAN
            return change
        if self._sources.drain(tag):
            return HEALTH if tag == "netlink" else RESCAN
        return None

    def _on_fs_event(self, event: inotify.Event) -> bool:
        """True when a sysfs directory changed; socket and config events are handled here."""
        if event.directory == self.socket_dir:
            self._on_socket_dir_event(event)
            return False
        if event.directory == self.opts.config_path.parent:
            self._reload_config()
            return False
        return True

    def _on_socket_dir_event(self, event: inotify.Event) -> None:
        if not self.watcher_mode and event.name == KUBELET_SOCKET and event.appeared:
            log.info("kubelet.sock re-created: re-registering every pool")
            self.registrar.want(self.servers)
            return
        for resource, server in list(self.servers.items()):
            if event.name == server.socket_path.name and event.vanished and not server.socket_path.exists():
                log.info("our socket was removed: serving anew", extra={"resource": resource})
                server.stop(remove_socket=False)
                self._serve(self.states[resource])

    def _reload_config(self) -> None:
        config = reload_config(self.opts.config_path, self.opts.resource_prefix, self.config)
        if config is not None:
            self.config = config
            self.reconcile()

    # -- the reconcile pass --------------------------------------------------------------------
    def reconcile(self) -> None:
        """Full pass: rediscover, reassign, re-evaluate health, serve new pools, drop removed ones."""
        assert self._sources is not None
        links = self._sources.links
        exclude = links.default_route_netdevs() if links else set()
        devices = remember(discover(self.sysfs, exclude), self._known)
        self._known = {d.address: d for d in devices}
        pools = pools_of(self.config, self.opts.resource_prefix)
        self._assignment = assign(pools, devices)
        for resource in set(self.servers) - set(self._assignment):
            self._drop_pool(resource)
        self._publish(pools, links.links() if links else None)

    def refresh_health(self) -> None:
        """Fast pass after link events: same devices and pools, fresh netlink and netdev presence."""
        assert self._sources is not None
        links = self._sources.links
        for resource, devices in self._assignment.items():
            self._assignment[resource] = [with_netdevs_now(self.sysfs, d) for d in devices]
        self._publish(pools_of(self.config, self.opts.resource_prefix), links.links() if links else None)

    def _publish(self, pools: list[Pool], table: dict[str, LinkState] | None) -> None:
        for pool in pools:
            devices = self._assignment.get(pool.resource, [])
            members = [PoolDevice(d, health(d, table, self.in_use.check(d))) for d in devices]
            state = self.states.get(pool.resource)
            if state is None:
                state = self.states[pool.resource] = PoolState(pool, self.opts.devinfo_dir)
                state.update(pool, members)
                self._serve(state)
            elif state.update(pool, members):
                self._log_pool(pool, members)
            else:
                continue
            devinfo.remove_pool(
                self.opts.devinfo_dir, pool.resource, keep=[m.device.address for m in members]
            )
            if self.opts.use_cdi:
                cdi.write_spec(self.opts.cdi_dir, pool.resource, cdi_spec(pool, [m.device for m in members]))
        if self.on_reconcile is not None:
            self.on_reconcile()

    def mark_allocated(self, resource: str, ids: list[str]) -> None:
        """Allocate's hook: these devices went to a pod, so their netdevs leaving the host is expected."""
        self.in_use.mark(ids)
        self.metrics.allocated.labels(resource).inc(len(ids))

    # -- what the endpoint reports -----------------------------------------------------------------
    def pool_devices(self) -> dict[str, list[PoolDevice]]:
        return {resource: state.snapshot()[1] for resource, state in list(self.states.items())}

    def healthy(self) -> bool:
        """Liveness: the event loop is running (it stops only on request)."""
        return self._running

    def ready(self) -> bool:
        """Readiness: every pool is served and kubelet has registered it."""
        return self._running and all(self.registered.get(resource, False) for resource in list(self.servers))

    def _log_pool(self, pool: Pool, members: list[PoolDevice]) -> None:
        unhealthy = {m.device.address: m.unhealthy for m in members if not m.healthy}
        log.info(
            "pool updated", extra={"resource": pool.resource, "devices": len(members), "unhealthy": unhealthy}
        )

    # -- serving and registration --------------------------------------------------------------
    def _serve(self, state: PoolState) -> None:
        pool = state.pool
        outputs = Outputs(
            self.opts.devinfo_dir, self.opts.use_cdi, self.mark_allocated, self.metrics.allocate_done
        )
        server = PoolServer(
            state, self.socket_dir / pool.socket_name, outputs, self._on_status if self.watcher_mode else None
        )
        server.start()
        self.servers[pool.resource] = server
        if not self.watcher_mode:
            self.registrar.want([pool.resource])
            self.registrar.run_due(self._pools())

    def _pools(self) -> dict[str, Pool]:
        return {resource: state.pool for resource, state in self.states.items() if resource in self.servers}

    def _on_status(self, pool: Pool, registered: bool, error: str) -> None:
        self.registered[pool.resource] = registered
        self.metrics.registration(pool.resource, registered)
        if registered:
            log.info("kubelet registered the pool", extra={"resource": pool.resource})
        else:
            log.error("kubelet refused the pool", extra={"resource": pool.resource, "error": error})

    def _drop_pool(self, resource: str) -> None:
        server = self.servers.pop(resource, None)
        state = self.states.pop(resource, None)
        self.registrar.forget(resource)
        if state is not None:
            state.close()
        if server is not None:
            server.stop(remove_socket=True)
        devinfo.remove_pool(self.opts.devinfo_dir, resource)
        if self.opts.use_cdi:
            cdi.remove_spec(self.opts.cdi_dir, resource)
        log.info("pool removed", extra={"resource": resource})

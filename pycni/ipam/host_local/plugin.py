"""host-local verbs: ADD reserves an address per range set, DEL releases, CHECK verifies,
GC releases what no valid attachment holds, STATUS says whether ADD can succeed.

Every verb that reads or writes reservations holds the network lock for its whole run, so a
multi-set ADD is all-or-nothing for other callers. No netlink here: IPAM only keeps books.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pycni.cni.errors import InvalidConfig, PluginError, PluginNotAvailable
from pycni.cni.files import make_private_dirs
from pycni.cni.ipaddr import IPAddress
from pycni.cni.plugin import Context
from pycni.cni.rollback import quietly
from pycni.cni.runtime import RuntimeArgs
from pycni.cni.types import IPConfig, Result
from pycni.ipam.host_local import store_files
from pycni.ipam.host_local.allocator import AllocationError, Allocator, Lease
from pycni.ipam.host_local.config import HostLocalConf, requested_ips
from pycni.ipam.host_local.disk import DiskStore, read_boot_id
from pycni.ipam.host_local.range_set import RangeSet
from pycni.ipam.host_local.resolv import parse_resolv_conf
from pycni.ipam.host_local.store import Owner, Store

log = logging.getLogger(__name__)

#: Test hook: SIGKILL the plugin at the named write step (see store_files.Hook) to prove crash safety.


def add(conf: HostLocalConf, rt: RuntimeArgs, ctx: Context) -> Result:
    """One address per range set; a retried ADD for the same attachment gets the same ones."""
    requested = requested_ips(conf, rt)
    dns = parse_resolv_conf(conf.ipam.resolv_conf) if conf.ipam.resolv_conf else None
    with locked(conf, ctx) as store:
        leases = allocate_all(conf.range_sets, store, Owner(rt.container_id, rt.ifname), requested)
    ips = [IPConfig(address=lease.address, gateway=lease.gateway) for lease in leases]
    return Result(cniVersion=conf.cni_version, ips=ips, routes=conf.ipam.routes, dns=dns)


def delete(conf: HostLocalConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Release the attachment's addresses; nothing to release is success (DEL is idempotent)."""
    if not open_store(conf, ctx).exists():
        return
    with locked(conf, ctx) as store:
        addrs = attachment_addrs(store, rt.container_id, rt.ifname)
        failures = release_all(store, addrs)
    if failures:
        raise PluginError("failed to release " + "; ".join(failures))


def check(conf: HostLocalConf, rt: RuntimeArgs, ctx: Context) -> None:
    """The attachment holds a reservation, and every address of prevResult in our ranges is its."""
    held: set[IPAddress] = set()
    if open_store(conf, ctx).exists():
        with locked(conf, ctx) as store:
            held = set(attachment_addrs(store, rt.container_id, rt.ifname))
    if not held:
        raise PluginError(f"host-local: Failed to find address added by container {rt.container_id}")
    prev = conf.prev_result
    for ipc in prev.ips if prev else []:
        addr = ipc.address.ip
        if addr not in held and any(rs.contains(addr) for rs in conf.range_sets):
            raise PluginError(
                f"host-local: address {addr} of prevResult is not reserved for {rt.container_id}/{rt.ifname}"
            )


def gc(conf: HostLocalConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Release every reservation no valid attachment holds (CNI 1.1 GC).

    Runs on the runtime's authoritative list only: without it nothing is released. Files
    with no readable owner (a crashed writer's) are released; legacy id-only files are kept
    while any valid attachment has that container ID. Errors are collected, not fatal.
    """
    valid = conf.valid_attachments
    if valid is None:
        raise InvalidConfig("GC needs cni.dev/valid-attachments in the config")
    if not open_store(conf, ctx).exists():
        return
    exact = {(a.container_id, a.ifname) for a in valid}
    ids = {a.container_id for a in valid}
    with locked(conf, ctx) as store:
        stale = [a for a, owner in store.reservations().items() if not _is_valid(owner, exact, ids)]
        failures = release_all(store, stale)
    log.info("GC of network %s released %d reservations", conf.name, len(stale) - len(failures))
    if failures:
        raise PluginError("GC failed to release " + "; ".join(failures))


def status(conf: HostLocalConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Ready when the store is writable and every range set has a free address (else code 50)."""
    store = open_store(conf, ctx)
    try:
        make_private_dirs(store.state_dir)
        make_private_dirs(store.net_dir)
    except OSError as err:
        raise PluginNotAvailable(f"data directory {store.net_dir} is not usable: {err.strerror}") from err
    if not os.access(store.net_dir, os.W_OK):
        raise PluginNotAvailable(f"data directory {store.net_dir} is not writable")
    if conf.ipam.release_on_reboot and store.recorded_boot_id() not in (None, read_boot_id()):
        return  # the next ADD releases the previous boot's reservations first
    for i, rs in enumerate(conf.range_sets):
        if Allocator(rs, store, i).first_free() is None:
            raise PluginNotAvailable(f"no IP addresses available in range set {i}: {rs}")


def open_store(conf: HostLocalConf, ctx: Context) -> DiskStore:
    crash_at = ctx.settings.host_local_crash_at
    hook = store_files.kill_at(crash_at) if crash_at else store_files.no_hook
    return DiskStore(Path(conf.ipam.data_dir), conf.name, hook=hook)


@contextmanager
def locked(conf: HostLocalConf, ctx: Context) -> Iterator[DiskStore]:
    """The store under its lock, with the reboot guard applied first when enabled."""
    store = open_store(conf, ctx)
    with store.lock():
        if conf.ipam.release_on_reboot:
            released = store.forget_previous_boot(read_boot_id())
            if released:
                log.warning("network %s: released %d reservations of a previous boot", conf.name, released)
        yield store


def allocate_all(sets: list[RangeSet], store: Store, owner: Owner, requested: list[IPAddress]) -> list[Lease]:
    """A lease per set, or none: addresses reserved by this call are released on failure."""
    left = list(requested)
    leases: list[Lease] = []
    with ExitStack() as undo:
        for i, rs in enumerate(sets):
            want = next((a for a in left if rs.contains(a)), None)
            if want is not None:
                left.remove(want)
            try:
                lease = Allocator(rs, store, i).allocate(owner, want)
            except AllocationError as err:
                raise AllocationError(f"failed to allocate for range {i}: {err.msg}") from err
            if lease.fresh:
                undo.callback(quietly(store.release), lease.address.ip)
            leases.append(lease)
        if left:
            raise AllocationError("failed to allocate all requested IPs: " + " ".join(map(str, left)))
        undo.pop_all()
    return leases


def attachment_addrs(store: Store, container_id: str, ifname: str) -> list[IPAddress]:
    """The attachment's addresses; legacy id-only files count only when it has no exact ones."""
    held = store.held_by(container_id)
    exact = [a for a, o in held.items() if o.is_exactly(container_id, ifname)]
    return exact or [a for a, o in held.items() if o.ifname is None]


def release_all(store: Store, addrs: list[IPAddress]) -> list[str]:
    """Release each address, carrying on past failures; the failures, described."""
    failures = []
    for addr in addrs:
        try:
            store.release(addr)
        except OSError as err:
            failures.append(f"{addr}: {err.strerror}")
    return failures


def _is_valid(owner: Owner | None, exact: set[tuple[str, str]], ids: set[str]) -> bool:
    if owner is None:
        return False
    if owner.ifname is None:
        return owner.container_id in ids
    return (owner.container_id, owner.ifname) in exact

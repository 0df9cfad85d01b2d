"""STATUS and GC of a plugin that lends node devices to pods (host-device, sriov).

Both verbs are the same for every such plugin: STATUS is ready when ADD can record what it
takes (the record store is writable), the plugin's own hardware check passes and IPAM is ready;
GC releases every attachment of the network that is not in the runtime's valid list (or was
released by a DEL that could not find its device), each past the failures of the others, then
runs IPAM's GC. The plugin says only how to release one record and what to lock.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from pycni.attach.device.record import RecordStore, State
from pycni.cni.errors import PluginNotAvailable
from pycni.cni.rollback import BestEffort
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.libcni import delegate

if TYPE_CHECKING:
    from pycni.cni.config import NetConf
    from pycni.cni.plugin import Context


def status(
    conf: NetConf,
    rt: RuntimeArgs,
    ctx: Context,
    store: RecordStore[Any],
    hardware_ready: Callable[[], None] | None = None,
) -> None:
    """Ready when `store` is writable (else code 50), the hardware is, and IPAM is ready."""
    if not store.writable():
        raise PluginNotAvailable(f"{conf.type} state directory {store.directory} is not writable")
    if hardware_ready is not None:
        hardware_ready()
    delegate.ipam(ctx.delegate, conf, rt, Command.STATUS)


def collect(
    conf: NetConf,
    rt: RuntimeArgs,
    ctx: Context,
    store: RecordStore[State],
    release: Callable[[State], None],
    describe: Callable[[State], str],
    held: AbstractContextManager[object] | None = None,
) -> None:
    """GC: `release` each collectable record of the network (under `held`), then IPAM's GC.

    Without the runtime's valid list nothing is released: only IPAM's GC runs. Every failure is
    reported at the end, once every step has run.
    """
    steps = BestEffort()
    valid = conf.valid_attachments
    if valid is not None:
        with held or nullcontext():
            for rec in store.collectable(conf.name, valid):
                steps.run(f"releasing {describe(rec)}", release, rec)
    steps.run("IPAM GC", delegate.ipam, ctx.delegate, conf, rt, Command.GC)
    steps.raise_if_failed()

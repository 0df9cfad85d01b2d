"""Placeholder verbs until this type lands: VERSION works, every other command is code 101."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from pycni.cni.errors import NotImplementedYet

if TYPE_CHECKING:
    from pycni.cni.config import NetConf
    from pycni.cni.plugin import Context
    from pycni.cni.runtime import RuntimeArgs
    from pycni.cni.types import Result


def _not_landed(conf: NetConf, rt: RuntimeArgs) -> NoReturn:
    raise NotImplementedYet(f"the sriov plugin does not implement {rt.command} in this release")


def add(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> Result:
    _not_landed(conf, rt)


def check(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    _not_landed(conf, rt)


def delete(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    _not_landed(conf, rt)


def status(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    _not_landed(conf, rt)


def gc(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    _not_landed(conf, rt)

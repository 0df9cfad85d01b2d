"""A plugin whose DEL verb is misspelt: the runner must refuse it, not succeed silently."""

from __future__ import annotations

from pycni.cni.config import NetConf
from pycni.cni.plugin import Context
from pycni.cni.runtime import RuntimeArgs
from pycni.cni.types import Result


def add(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> Result:
    return Result(cni_version=conf.cni_version)


def delte(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Misspelt on purpose."""


def check(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    pass


def status(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    pass


def gc(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    pass

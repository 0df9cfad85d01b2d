"""The verbs of a type whose implementation has not landed: VERSION works, the rest is code 101.

The registry points such a type here, so it is installed, answers VERSION and refuses every
other command clearly instead of failing to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from pycni.cni.errors import NotImplementedYet

if TYPE_CHECKING:
    from pycni.cni.config import NetConf
    from pycni.cni.plugin import Context
    from pycni.cni.runtime import RuntimeArgs
    from pycni.cni.types import Result


def _refuse(conf: NetConf, rt: RuntimeArgs) -> NoReturn:
    raise NotImplementedYet(f"the {conf.type} plugin does not implement {rt.command} in this release")


def add(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> Result:
    _refuse(conf, rt)


def check(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    _refuse(conf, rt)


def delete(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    _refuse(conf, rt)


def status(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    _refuse(conf, rt)


def gc(conf: NetConf, rt: RuntimeArgs, ctx: Context) -> None:
    _refuse(conf, rt)

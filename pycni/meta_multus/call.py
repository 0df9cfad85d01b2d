"""One multus request, as the steps that span all of a pod's attachments see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.cni.runtime import RuntimeArgs
    from pycni.meta_multus.config import MultusConf
    from pycni.meta_multus.plan import PlanStore


@dataclass(frozen=True)
class MultusCall:
    """The request's config, runtime args and context, and the plans it reads and rewrites."""

    conf: MultusConf
    rt: RuntimeArgs
    ctx: Context
    plans: PlanStore

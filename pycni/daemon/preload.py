"""Import once, before the workers fork, everything a request would otherwise import or build.

Workers share these pages copy-on-write; `gc.freeze` keeps the collector from touching (and
so copying) them. The warm-up also settles pyroute2's lazily built state, and builds the
validators and serializers of the result models, which are deferred (`defer_build`) so an
executable pays only for the version it prints: built in each worker instead, they cost
every worker ~4 MiB of private memory and its first ADD several milliseconds.
"""

from __future__ import annotations

import gc
import io
import logging

from pycni import registry
from pycni.registry import PLUGINS

log = logging.getLogger("pycni.daemon")


def preload(warm_up_cycles: int = 0) -> list[str]:
    """The plugin types now ready in memory; a type that fails to import is left to load later.

    `warm_up_cycles`: pod lifecycles run first in scratch namespaces (`warmup`), so the hot
    paths' bytecode is specialised before the fork, in pages the workers share.
    """
    ready = []
    for ref in PLUGINS.values():
        try:
            ref.load_conf_model()
            ref.load_ops()
        except Exception:
            log.exception("cannot preload plugin type %s", ref.type)
            continue
        ready.append(ref.type)
    import pycni.cni.settings
    import pycni.cni.types
    import pycni.libcni.delegate  # noqa: F401  (what every request's context and result need)
    from pycni.k8s import apiserver
    from pycni.net import links, netns

    apiserver.resources()  # lightkube and multus's resource classes: ~0.2 s less on a first API call
    with netns.rtnl() as ipr:
        links.link_by_index(ipr, 1)  # settles pyroute2's lazily built state before the fork
    for ref in PLUGINS.values():
        registry.run(ref.type, {"CNI_COMMAND": "VERSION"}, io.BytesIO(b"{}"), io.StringIO())
    _build_deferred_models()
    if warm_up_cycles:
        from pycni.daemon.warmup import warm_up

        warm_up(warm_up_cycles)
    gc.collect()
    gc.freeze()
    return ready


def _build_deferred_models() -> None:
    """Build every pydantic model of ours whose schema is still deferred (the result types)."""
    from pydantic import BaseModel

    pending: list[type[BaseModel]] = [BaseModel]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("pycni.") and not cls.__pydantic_complete__:
            cls.model_rebuild(force=True)

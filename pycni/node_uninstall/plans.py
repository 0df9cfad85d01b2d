"""multus plans an earlier pycni wrote (one object per pod) become multus-cni's scratch caches."""

from __future__ import annotations

import json
from pathlib import Path

from pycni.meta_multus.plan import CorruptPlan, PlanStore


def rewrite(directory: Path, report: list[str]) -> None:
    store = PlanStore(directory)
    for container_id in store.container_ids():
        try:
            raw = json.loads(store.path(container_id).read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(raw, dict):
            continue  # already multus-cni's array
        try:
            plan = store.load(container_id)
        except CorruptPlan as err:
            report.append(f"multus: {container_id}: damaged plan left in place ({err})")
            continue
        if plan is not None and plan.attachments:
            store.save(plan)
            report.append(f"multus: {container_id}: plan rewritten as multus-cni's scratch cache")

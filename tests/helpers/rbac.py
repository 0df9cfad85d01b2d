"""Comparing a ClusterRole with the calls a component makes: the rules it grants, each request the
API server stand-in saw mapped to the rule it needs, and the lightkube calls in a client module."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

Rule = tuple[str, str, str]  # (API group, resource, verb)
#: lightkube Client methods -> the RBAC verb each one needs.
CLIENT_VERBS = {"get": "get", "list": "list", "watch": "watch", "create": "create", "replace": "update",
                "patch": "patch", "delete": "delete", "apply": "patch"}  # fmt: skip


def granted(manifest: Path) -> set[Rule]:
    """Every (group, resource, verb) the manifest's ClusterRole grants."""
    role = next(d for d in yaml.safe_load_all(manifest.read_text()) if d["kind"] == "ClusterRole")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def route(routes: list[tuple[re.Pattern[str], Rule]], method: str, path: str) -> Rule:
    """The rule a request needs, by the first pattern matching `METHOD /path`."""
    line = f"{method} {path}"
    for pattern, rule in routes:
        if pattern.match(line):
            return rule
    raise AssertionError(f"a call no rule covers: {line}")


def client_verbs(module: Path) -> set[str]:
    """The RBAC verbs of every lightkube call (`client.x(` or `c.x(`) in a module's source, and of
    `get_or_none(` (pycni.k8s.apiserver's GET that takes a 404 for None)."""
    source = module.read_text()
    used = re.findall(r"\b(?:client|c)\.(get|list|watch|create|replace|patch|delete|apply)\(", source)
    return {CLIENT_VERBS[m] for m in used} | ({"get"} if re.search(r"\bget_or_none\(", source) else set())

"""The Kubernetes manifests: valid against the API of 1.30 and of the newest release (the DRA
driver's, which need resource.k8s.io/v1: of 1.34 and 1.37), consistent with the code they run
(flags that exist, configs our plugins accept), and complete."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pycni import registry
from pycni.daemon import cli as daemon_cli
from pycni.device_plugin import cli as device_plugin_cli
from pycni.dra import cli as dra_cli
from pycni.node_install import cli as node_install_cli

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
#: resource.k8s.io/v1 is GA from 1.34; 1.37 is the newest release the DRA manifests are checked against.
DRA_VERSIONS = ["1.34.0", "1.37.0"]
DRA_FILES = {
    "deviceclass-sriov.yaml",
    "rbac-dra-driver.yaml",
    "daemonset-dra-driver.yaml",
    "pod-dra-vfs.yaml",
    "pod-dra-networks.yaml",
}
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "daemon": daemon_cli.build_parser,
    "device-plugin": device_plugin_cli.build_parser,
    "dra-driver": dra_cli.build_parser,
    "node-install": node_install_cli.build_parser,
}


def documents(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as f:
        yield from (doc for doc in yaml.safe_load_all(f) if doc)


def all_documents(pattern: str = "*.yaml") -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, doc) for p in sorted(MANIFESTS.glob(pattern)) for doc in documents(p)]


#: Kinds that are not part of the Kubernetes API (kustomize's own file, our CRD's objects).
NOT_API = {"Kustomization", "NetworkAttachmentDefinition"}
EVERY = [(n, d) for n, d in all_documents() + all_documents("examples/*.yaml") if d["kind"] not in NOT_API]
BUILTIN = [(n, d) for n, d in EVERY if n not in DRA_FILES]
DRA = [(n, d) for n, d in EVERY if n in DRA_FILES]
NADS = [(n, d) for n, d in all_documents("examples/*.yaml") if d["kind"] == "NetworkAttachmentDefinition"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), BUILTIN, ids=[f"{n}:{d['kind']}" for n, d in BUILTIN])
def test_builtin_kinds_validate_strictly(name: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", DRA_VERSIONS)
@pytest.mark.parametrize(("name", "doc"), DRA, ids=[f"{n}:{d['kind']}" for n, d in DRA])
def test_dra_manifests_validate_strictly(name: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_dra_manifests_are_all_there() -> None:
    assert {d["kind"] for _, d in DRA} >= {
        "DeviceClass",
        "DaemonSet",
        "ClusterRole",
        "ValidatingAdmissionPolicy",
    }


@pytest.mark.parametrize(("name", "doc"), NADS, ids=[n for n, _ in NADS])
def test_example_nads_fit_the_crd_and_our_plugins(name: str, doc: dict[str, Any]) -> None:
    (crd,) = documents(MANIFESTS / "crd-network-attachment-definition.yaml")
    jsonschema.validate(doc, crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    conf = json.loads(doc["spec"]["config"])
    assert conf["name"] == doc["metadata"]["name"]
    ref = registry.PLUGINS[conf["type"]]
    ref.load_conf_model().load(conf)  # raises InvalidConfig on a key our plugin rejects


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = documents(MANIFESTS / "kustomization.yaml")
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def containers() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, doc in all_documents():
        if doc["kind"] == "DaemonSet":
            spec = doc["spec"]["template"]["spec"]
            found += [(f"{name}:{c['name']}", c) for c in spec.get("initContainers", []) + spec["containers"]]
    return found


@pytest.mark.parametrize(("name", "container"), containers(), ids=[n for n, _ in containers()])
def test_every_command_line_is_one_pycni_accepts(name: str, container: dict[str, Any]) -> None:
    command = container["command"]
    assert command[0] == "pycni" and command[1] in PARSERS
    PARSERS[command[1]]().parse_args(command[2:])  # exits (fails the test) on an unknown flag
    for probe in ("readinessProbe", "livenessProbe"):
        exec_probe = container.get(probe, {}).get("exec")
        if exec_probe:
            assert exec_probe["command"][:2] == command[:2]
            PARSERS[command[1]]().parse_args(exec_probe["command"][2:])

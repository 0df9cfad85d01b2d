"""Fuzzing multus's parsers: the pod's networks annotation and NetworkAttachmentDefinitions.

Arbitrary text and JSON go in; what comes out is a parsed model that holds every rule (names are
DNS-1123 labels, interfaces valid ifnames, plugin types plain executable names) or a CNIError with
the code the spec gives that kind of input. Nothing else may escape: no KeyError, TypeError or
RecursionError from a hostile value, and no hang (each example runs in well under a second).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pycni.cni.errors import CNIError, DecodingFailure, InvalidConfig
from pycni.cni.runtime import validate_ifname
from pycni.k8s import objects
from pycni.k8s.manifests import ManifestSource
from pycni.meta_multus import networks, selection
from tests.helpers.fuzz import fuzz_settings

pytestmark = pytest.mark.fuzz

ANNOTATION = objects.NETWORKS_ANNOTATION

#: Characters that matter to the parsers: separators, path parts, quotes, whitespace, controls.
HOSTILE_CHARS = st.sampled_from([*"abz09-._/@,:[]{}\"' \t\n\r\x00\\%#", "é", "\u202e", "\uff21"])
PIECE = st.one_of(
    st.text(HOSTILE_CHARS, max_size=12),
    st.sampled_from(["net-a", "ns-b", "eth1", "..", ".", "../../x", "a/b", "", "A", "x" * 64, "x" * 254]),
)
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(HOSTILE_CHARS, max_size=10)
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SELECTION_KEYS = [
    "name", "namespace", "interface", "interfaceRequest", "mac", "ips", "default-route", "cni-args",
    "portMappings", "bandwidth", "deviceID", "infiniband-guid", "ipam-claim-reference",
]  # fmt: skip
SELECTION_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": PIECE,
    "namespace": PIECE,
    "interface": PIECE,
    "interfaceRequest": PIECE,
    "mac": st.one_of(PIECE, st.just("c2:11:22:33:44:55"), st.just("c2:11:22:33:44:55\n")),
    "ips": st.lists(st.one_of(PIECE, st.sampled_from(["10.1.0.5/24", "fd00::5/64", "10.1.0.5"])), max_size=3),
    "default-route": st.lists(st.one_of(PIECE, st.sampled_from(["10.1.0.1", "fd00::1"])), max_size=3),
}


@st.composite
def selection_element(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(SELECTION_KEYS), max_size=6, unique=True))
    element = {k: draw(SELECTION_VALUES.get(k, JSON_VALUE) | JSON_VALUE) for k in keys}
    if draw(st.booleans()):
        element["name"] = draw(st.sampled_from(["net-a", "b", "x-1"]))
    return element


@st.composite
def comma_form(draw: st.DrawFn) -> str:
    items = []
    for _ in range(draw(st.integers(0, 4))):
        item = draw(PIECE)
        if draw(st.booleans()):
            item = f"{draw(PIECE)}/{item}"
        if draw(st.booleans()):
            item = f"{item}@{draw(PIECE)}"
        items.append(item)
    return draw(st.sampled_from([",", ", ", " ,"])).join(items)


ANNOTATION_TEXT = st.one_of(
    st.text(max_size=60),
    comma_form(),
    st.lists(selection_element(), max_size=3).map(json.dumps),
    st.lists(JSON_VALUE, max_size=3).map(json.dumps),
    JSON_VALUE.map(json.dumps),
    st.integers(1, 5_000).map(lambda n: "[" * n),  # Python's decoder recurses: ~1,000 is its limit
    st.integers(1, 5_000).map(lambda n: "[" * n + "]" * n),
)


def _assert_selection(sel: selection.NetworkSelection) -> None:
    for value in (sel.name, sel.namespace):
        assert objects.DNS1123_LABEL.fullmatch(value), value
        assert "/" not in value and ".." not in value
    if sel.requested_ifname:
        validate_ifname(sel.requested_ifname)


@fuzz_settings()
@given(ANNOTATION_TEXT)
@example("../../x")
@example("ns/../../x@eth1")
@example('[{"name": "a\\n"}]')
@example('[{"name": "a", "namespace": "../../x"}]')
@example('[{"name": "a", "mac": "c2:11:22:33:44:55\\n"}]')
@example("[" * 100_000)
def test_networks_annotation(text: str) -> None:
    """Either every element holds the rules, or InvalidConfig (7) names the annotation."""
    try:
        parsed = selection.parse(text, "default", ANNOTATION)
    except CNIError as err:
        assert isinstance(err, InvalidConfig), err
        assert ANNOTATION in err.msg
        return
    for sel in parsed:
        _assert_selection(sel)


def test_trailing_newline_is_not_a_name() -> None:
    """Regression: `$` let a trailing newline through the DNS-1123 and MAC checks."""
    for element in (
        {"name": "a\n"},
        {"name": "a", "namespace": "b\n"},
        {"name": "a", "mac": "c2:11:22:33:44:55\n"},
    ):
        with pytest.raises(InvalidConfig):
            selection.parse(json.dumps([element]), "default", ANNOTATION)


def test_deeply_nested_annotation_is_a_config_error() -> None:
    """Regression: a deeply nested JSON value raised RecursionError (an internal error)."""
    with pytest.raises(InvalidConfig, match="nested too deeply"):
        selection.parse("[" * 100_000, "default", ANNOTATION)


# -- NetworkAttachmentDefinitions ----------------------------------------------------------------
PLUGIN_TYPE = st.one_of(
    st.sampled_from(["bridge", "mm-stub", "../../bin/sh", "/bin/sh", ".", "..", "multus", "a..b", ""]),
    PIECE,
    JSON_VALUE,
)


@st.composite
def plugin_conf(draw: st.DrawFn) -> dict[str, Any]:
    conf = draw(
        st.dictionaries(st.sampled_from(["ipam", "capabilities", "args", "runtimeConfig", "x"]), JSON_VALUE)
    )
    if draw(st.integers(0, 5)):
        conf["type"] = draw(PLUGIN_TYPE)
    return conf


@st.composite
def nad_config(draw: st.DrawFn) -> str:
    """`spec.config`: a single config, a conflist, other JSON, or not JSON at all."""
    head = draw(st.dictionaries(st.sampled_from(["cniVersion", "name", "disableCheck"]), JSON_VALUE))
    if draw(st.booleans()):
        head["cniVersion"] = "1.0.0"
    kind = draw(st.integers(0, 4))
    if kind == 0:
        body: Any = {**head, **draw(plugin_conf())}
    elif kind == 1:
        body = {**head, "plugins": draw(st.lists(plugin_conf(), max_size=3))}
    elif kind == 2:
        body = {**head, "plugins": draw(JSON_VALUE)}
    elif kind == 3:
        return draw(st.one_of(st.text(max_size=40), st.integers(1, 5_000).map(lambda n: '{"a":' * n)))
    else:
        body = draw(JSON_VALUE)
    return json.dumps(body)


@st.composite
def nad_object(draw: st.DrawFn) -> Any:
    meta: dict[str, Any] = {"name": draw(st.sampled_from(["net-a", "b.c"]) | PIECE | JSON_VALUE)}
    if draw(st.booleans()):
        meta["namespace"] = draw(st.sampled_from(["default", "ns-1"]) | PIECE | JSON_VALUE)
    if draw(st.booleans()):
        meta["annotations"] = draw(
            st.dictionaries(st.sampled_from([objects.RESOURCE_NAME_ANNOTATION, "x"]), PIECE | JSON_VALUE)
        )
    obj: dict[str, Any] = {"metadata": meta if draw(st.integers(0, 9)) else draw(JSON_VALUE)}
    if draw(st.integers(0, 9)):
        obj["spec"] = (
            {"config": draw(nad_config() | JSON_VALUE)} if draw(st.integers(0, 9)) else draw(JSON_VALUE)
        )
    return obj if draw(st.integers(0, 19)) else draw(JSON_VALUE)


def _assert_network(network: networks.Network, nad: objects.NetworkAttachmentDefinition) -> None:
    assert network.status_name == f"{nad.namespace}/{nad.name}"
    assert network.resource_name == nad.resource_name
    listed = network.conflist
    assert isinstance(listed["plugins"], list) and listed["plugins"]
    for plugin in listed["plugins"]:
        kind = plugin["type"]
        assert isinstance(kind, str) and kind and "/" not in kind and ".." not in kind and kind != "."
        assert kind not in networks.SELF_TYPES


@fuzz_settings()
@given(obj=nad_object())
@example(obj={"metadata": {"name": "../../x"}, "spec": {"config": "{}"}})
@example(obj={"metadata": {"name": "n"}, "spec": {"config": json.dumps({"type": "../../bin/sh"})}})
@example(obj={"metadata": {"name": "n"}, "spec": {"config": json.dumps({"plugins": [{"type": "/bin/sh"}]})}})
@example(obj={"metadata": {"name": "n"}, "spec": {"config": '{"a":' * 50_000}})
def test_nad(obj: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A NAD object parses to a model or DecodingFailure (6); its network to a list or 6/7/NotFound."""
    conf_dir = tmp_path_factory.getbasetemp() / "empty-conf-dir"
    try:
        nad = objects.parse_nad(obj, "NAD")
    except CNIError as err:
        assert isinstance(err, DecodingFailure), err
        return
    assert objects.is_dns_subdomain(nad.name) and objects.is_namespace(nad.namespace)
    try:
        network = networks.from_nad(nad, conf_dir, "1.0.0")
    except CNIError as err:
        assert isinstance(err, (DecodingFailure, InvalidConfig, networks.NetworkNotFound)), err
        assert f"{nad.namespace}/{nad.name}" in err.msg
        return
    _assert_network(network, nad)


def test_nad_names_are_kubernetes_names() -> None:
    """Regression: a manifest's pod or NAD named `../../x` was accepted, and names become file names."""
    for meta in ({"name": "../../x"}, {"name": "a/b"}, {"name": "ok", "namespace": ".."}, {"name": "a\n"}):
        with pytest.raises(DecodingFailure):
            objects.parse_nad({"metadata": meta}, "NAD")
        with pytest.raises(DecodingFailure):
            objects.parse_pod({"metadata": meta}, "pod")


# -- a directory of manifests --------------------------------------------------------------------
MANIFEST_TEXT = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=80).map(str.encode),
    st.lists(nad_object(), max_size=3).map(lambda objs: "\n---\n".join(json.dumps(o) for o in objs).encode()),
    st.lists(JSON_VALUE, max_size=3).map(lambda v: json.dumps({"kind": "List", "items": v}).encode()),
    st.builds(lambda k: json.dumps({"kind": k, "items": []}).encode(), JSON_VALUE),
    st.integers(1, 5_000).map(lambda n: b"[" * n),
)


@fuzz_settings()
@given(data=MANIFEST_TEXT, name=st.sampled_from(["objects.yaml", "objects.json"]))
@example(data=b"\xff\xfe", name="objects.yaml")
@example(data=b"[" * 50_000, name="objects.json")
@example(data=b"kind: 5\n", name="objects.yaml")
@example(data=b'{"kind": "Pod", "apiVersion": "v1", "metadata": 5}', name="objects.json")
def test_manifest_directory(data: bytes, name: str, tmp_path: Path) -> None:
    """Any file in the manifest directory: its objects, or DecodingFailure/IOFailure naming it."""
    directory = tmp_path / "manifests"
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    (directory / name).write_bytes(data)
    source = ManifestSource(directory, directory / "status")
    try:
        source.nad("default", "net-a")
        source.pod("default", "pod-a")
    except CNIError as err:
        assert err.code in (5, 6), err
        assert name in err.msg


def test_manifest_kind_not_a_string() -> None:
    """Regression: `kind: 5` or a non-object `metadata` raised AttributeError."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "a.yaml").write_text("kind: 5\n---\n{kind: Pod, apiVersion: v1, metadata: 5}\n")
        with pytest.raises(DecodingFailure):
            ManifestSource(directory, directory / "status").pod("default", "p")
        (directory / "a.yaml").write_text("kind: 5\n")
        assert ManifestSource(directory, directory / "status").pod("default", "p") is None


def test_conf_dir_files_that_cannot_be_decoded_are_skipped(tmp_path: Path) -> None:
    """Regression: a confDir file that is not UTF-8 raised UnicodeDecodeError, one nested too
    deeply RecursionError (both internal errors) instead of being skipped like bad JSON."""
    (tmp_path / "00-latin1.conf").write_bytes(b'{"name": "caf\xe9"}')
    (tmp_path / "01-deep.conf").write_bytes(b"[" * 100_000)
    (tmp_path / "10-good.conf").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "good", "type": "bridge"})
    )
    found = networks.by_name(tmp_path, "good")
    assert found is not None and found["type"] == "bridge"
    assert networks.by_name(tmp_path, "nope") is None
    with pytest.raises(DecodingFailure):
        networks.from_disk(str(tmp_path / "01-deep.conf"), tmp_path, "1.0.0")

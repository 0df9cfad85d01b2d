"""A manifest directory's parse is reused between requests only while no manifest changed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycni.k8s.manifests import ManifestSource
from pycni.meta_multus import manifest_cache
from tests.meta_multus.helpers import nad_manifest, pod_manifest, write_manifests


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    manifest_cache._kept.clear()
    yield
    manifest_cache._kept.clear()


def open_dir(tmp_path: Path) -> ManifestSource:
    return manifest_cache.source(tmp_path / "m", tmp_path / "status", tmp_path / "claims")


def networks_of(tmp_path: Path) -> str:
    source = open_dir(tmp_path)
    pod = source.pod("default", "web")
    assert pod is not None
    return pod.annotation("k8s.v1.cni.cncf.io/networks")


@pytest.fixture
def settled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as settled as soon as they are written (the tests need not wait a second)."""
    monkeypatch.setattr(manifest_cache, "SETTLED", -60.0)


def test_an_unchanged_settled_directory_is_parsed_once(tmp_path: Path, settled_at_once: None) -> None:
    write_manifests(tmp_path / "m", [pod_manifest("web", networks="blue")])
    first = open_dir(tmp_path)
    assert first.pod("default", "web") is not None
    assert open_dir(tmp_path) is first
    other_status = manifest_cache.source(tmp_path / "m", tmp_path / "elsewhere", tmp_path / "claims")
    assert other_status is not first and other_status.status_dir == tmp_path / "elsewhere"


@pytest.mark.parametrize("change", ["rename", "in place", "new file", "removed file"])
def test_every_kind_of_change_is_read(tmp_path: Path, settled_at_once: None, change: str) -> None:
    directory = tmp_path / "m"
    write_manifests(directory, [pod_manifest("web", networks="blue")])
    write_manifests(directory, [nad_manifest("blue", {"type": "bridge"})], "nads.yaml")
    assert networks_of(tmp_path) == "blue"
    path = directory / "objects.yaml"
    if change == "rename":
        write_manifests(directory, [pod_manifest("web", networks="gren")], "new.tmp")
        os.replace(directory / "new.tmp", path)
    elif change == "in place":  # same size, same inode: only the timestamps differ
        before = path.stat()
        path.write_text(path.read_text().replace("blue", "gren"))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    elif change == "new file":
        path.unlink()
        (directory / "pods.json").write_text(json.dumps(pod_manifest("web", networks="gren")))
    else:
        (directory / "nads.yaml").unlink()
        assert open_dir(tmp_path).nad("default", "blue") is None
        return
    assert networks_of(tmp_path) == "gren"


def test_a_directory_changed_within_the_last_second_is_read_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its timestamps cannot tell two writes in one clock tick apart: nothing is kept."""
    monkeypatch.setattr(manifest_cache, "SETTLED", 3600.0)
    write_manifests(tmp_path / "m", [pod_manifest("web", networks="blue")])
    first = open_dir(tmp_path)
    assert first.pod("default", "web") is not None
    assert open_dir(tmp_path) is not first


def test_a_missing_directory_is_reported_when_read_not_kept(tmp_path: Path, settled_at_once: None) -> None:
    from pycni.cni.errors import IOFailure

    with pytest.raises(IOFailure):
        open_dir(tmp_path).pod("default", "web")
    assert manifest_cache._kept == {}

"""Parsed manifest directories, kept between the requests one process serves (the node
daemon's workers), so a pod's ADD does not read and validate every Pod and NAD again.

A directory's parse is reused while its fingerprint holds: every manifest file's name, device,
inode, size, mtime and ctime, each file followed through symlinks (a ConfigMap volume's update
swaps a symlink to new files). A file rewritten in place within one tick of the kernel's coarse
clock would keep its timestamps, so, as git does with racily clean index entries, a parse is
kept only when every file was last changed more than `SETTLED` seconds before it was made: a
directory still being written is read again on every request. ctime cannot be set from user
space, so a later change always shows. A directory that cannot be listed is not cached:
`ManifestSource` reports it when read.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import NamedTuple

from pycni.k8s.manifests import SUFFIXES, ManifestSource

#: Seconds since a manifest's last change before its parse may be reused.
SETTLED = 1.0

Fingerprint = tuple[tuple[str, int, int, int, int, int], ...]


class _Kept(NamedTuple):
    fingerprint: Fingerprint
    source: ManifestSource


_kept: dict[tuple[Path, Path, Path], _Kept] = {}


def source(directory: Path, status_dir: Path, claim_status_dir: Path) -> ManifestSource:
    """A `ManifestSource` of `directory`: the one kept from an earlier request if no manifest
    changed since, else a new one (kept for the next request once its files are settled)."""
    key = (directory, status_dir, claim_status_dir)
    try:
        fingerprint, settled = _fingerprint(directory)
    except OSError:
        _kept.pop(key, None)
        return ManifestSource(directory, status_dir, claim_status_dir)
    kept = _kept.get(key)
    if kept is not None and kept.fingerprint == fingerprint:
        return kept.source
    fresh = ManifestSource(directory, status_dir, claim_status_dir)
    if settled:
        _kept[key] = _Kept(fingerprint, fresh)
    else:
        _kept.pop(key, None)
    return fresh


def _fingerprint(directory: Path) -> tuple[Fingerprint, bool]:
    """(what identifies each manifest file's content, whether all of them are settled)."""
    horizon = time.time_ns() - int(SETTLED * 1e9)
    found = []
    settled = True
    with os.scandir(directory) as entries:
        for entry in entries:
            if os.path.splitext(entry.name)[1] not in SUFFIXES:
                continue
            try:
                info = os.stat(entry.path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            found.append(
                (entry.name, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            )
            settled = settled and max(info.st_mtime_ns, info.st_ctime_ns) < horizon
    return tuple(sorted(found)), settled

"""`pycni install`: write one small executable per plugin type into a CNI bin directory.

Each executable names this interpreter by absolute path with `-I -S` (isolated, no `site`:
no shell shim, no .pth scanning, ~10 ms less per call) and carries the import paths it needs,
so it works whatever the caller's environment is. It is marked as ours so that a file we did
not write is never overwritten without `--force`.
"""

from __future__ import annotations

import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pycni
from pycni.cni.files import write_atomic
from pycni.registry import PLUGINS

MARKER = "# pycni-launcher"

TEMPLATE = """#!{python} -IS
{marker} type={plugin_type} version={version}
import sys
sys.path[:0] = {paths!r}
from pycni.daemon.launcher import main
main({plugin_type!r})
"""


class InstallError(Exception):
    pass


@dataclass(frozen=True)
class Installed:
    path: Path
    changed: bool


def import_paths() -> list[str]:
    """Where pycni and its dependencies live, since `-S` skips site-packages discovery."""
    package_parent = str(Path(pycni.__file__).resolve().parent.parent)
    paths = [package_parent]
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths()[key]
        if p not in paths:
            paths.append(p)
    return paths


def launcher_text(plugin_type: str, python: str | None = None) -> str:
    return TEMPLATE.format(
        python=python or sys.executable,
        marker=MARKER,
        plugin_type=plugin_type,
        version=pycni.__version__,
        paths=import_paths(),
    )


def is_ours(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return MARKER.encode() in head


def install_one(bin_dir: Path, plugin_type: str, force: bool = False) -> Installed:
    target = bin_dir / plugin_type
    text = launcher_text(plugin_type)
    if target.exists() or target.is_symlink():
        if not force and not is_ours(target):
            raise InstallError(f"{target} exists and was not written by pycni (use --force to replace it)")
        if target.is_file() and not target.is_symlink() and target.read_text(errors="replace") == text:
            return Installed(target, changed=False)
    write_atomic(target, text.encode(), 0o755)  # a runtime exec'ing it never sees half
    return Installed(target, changed=True)


def install(bin_dir: Path, types: list[str] | None = None, force: bool = False) -> list[Installed]:
    """Install every type (or `types`); refuses before writing anything if one would clobber."""
    wanted = types or list(PLUGINS)
    unknown = [t for t in wanted if t not in PLUGINS]
    if unknown:
        raise InstallError(f"unknown plugin types {unknown}; known: {sorted(PLUGINS)}")
    bin_dir.mkdir(parents=True, exist_ok=True)
    if not force:
        clobbered = [bin_dir / t for t in wanted if (bin_dir / t).exists() and not is_ours(bin_dir / t)]
        if clobbered:
            names = ", ".join(str(p) for p in clobbered)
            raise InstallError(f"not overwriting files pycni did not write: {names} (use --force)")
    return [install_one(bin_dir, t, force) for t in wanted]

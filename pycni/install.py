"""`pycni install`: write one small executable per plugin type into a CNI bin directory.

Two kinds, chosen by `--launcher`:

- **native**: the forwarder in `pycni/daemon/forwarder.c`, compiled here once per type with
  the system C compiler (static where the C library allows it, else dynamic). It starts in
  well under a millisecond, hands the request to the node daemon, and execs the Python
  fallback beside it, `<bin>/.pycni/<type>`, whenever the daemon does not take the request.
- **python**: the launcher itself, a script naming this interpreter by absolute path with
  `-I -S` (isolated, no `site`: no shell shim, no .pth scanning) that carries the import
  paths it needs, so it works whatever the caller's environment is.

`auto` (the default) is native when a compiler works and python otherwise, and says why.
Every file written is marked as ours, so a file we did not write is never overwritten without
`--force`, and each is replaced atomically: a runtime exec'ing it never sees half of one.
"""

from __future__ import annotations

import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pycni
from pycni.cni.files import write_atomic
from pycni.daemon.native import BuildError, Compiler, compile_forwarder, find_compiler
from pycni.registry import PLUGINS

MARKER = "# pycni-launcher"
#: Where the native forwarder's Python fallbacks live, beside the executables (a name no
#: plugin type has, so a runtime looking up a type never finds it).
FALLBACK_DIR = ".pycni"
#: How much of a file is searched for the marker (a static forwarder is about 800 KiB).
MARKER_SCAN = 8 << 20

LauncherKind = Literal["python", "native", "auto"]

TEMPLATE = """#!{python} -IS
{marker} type={plugin_type} version={version} kind={kind}
import sys
sys.path[:0] = {paths!r}
from pycni.daemon.launcher import {entry}
{entry}({plugin_type!r})
"""


class InstallError(Exception):
    pass


@dataclass(frozen=True)
class Installed:
    path: Path
    changed: bool
    kind: str


@dataclass(frozen=True)
class Installation:
    """What was written, of which kind, and (auto without a compiler) why not native."""

    items: list[Installed] = field(default_factory=list)
    kind: str = "python"
    note: str = ""


def import_paths() -> list[str]:
    """Where pycni and its dependencies live, since `-S` skips site-packages discovery."""
    package_parent = str(Path(pycni.__file__).resolve().parent.parent)
    paths = [package_parent]
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths()[key]
        if p not in paths:
            paths.append(p)
    return paths


def launcher_text(plugin_type: str, python: str | None = None, *, fallback: bool = False) -> str:
    """The Python launcher; `fallback`: the native forwarder's, which runs the plugin right here."""
    return TEMPLATE.format(
        python=python or sys.executable,
        marker=MARKER,
        plugin_type=plugin_type,
        version=pycni.__version__,
        kind="fallback" if fallback else "python",
        entry="run_here" if fallback else "main",
        paths=import_paths(),
    )


def is_ours(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(MARKER_SCAN)
    except OSError:
        return False
    return MARKER.encode() in head


def fallback_path(bin_dir: Path, plugin_type: str) -> Path:
    return bin_dir.resolve() / FALLBACK_DIR / plugin_type


# -- writing -------------------------------------------------------------------------------


def _write(target: Path, data: bytes) -> bool:
    """Atomically replace `target` with `data` unless it already holds exactly that."""
    try:
        if target.is_file() and not target.is_symlink() and target.read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomic(target, data, 0o755)
    return True


def _check_clobber(targets: list[Path], force: bool) -> None:
    if force:
        return
    clobbered = [p for p in targets if (p.exists() or p.is_symlink()) and not is_ours(p)]
    if clobbered:
        names = ", ".join(str(p) for p in clobbered)
        raise InstallError(f"not overwriting files pycni did not write: {names} (use --force)")


def install_one(
    bin_dir: Path,
    plugin_type: str,
    force: bool = False,
    compiler: Compiler | None = None,
    daemon_only: bool = False,
) -> Installed:
    """One type's executable: the native forwarder with `compiler` (and its fallback), else Python.

    `daemon_only`: a forwarder without a fallback, for executables whose interpreter is not on
    the host (a cluster install from an image: the daemon's pod has it).
    """
    target = bin_dir / plugin_type
    if compiler is None:
        _check_clobber([target], force)
        return Installed(target, _write(target, launcher_text(plugin_type).encode()), "python")
    fallback = None if daemon_only else fallback_path(bin_dir, plugin_type)
    _check_clobber([target] if fallback is None else [target, fallback], force)
    kind = "daemon-only" if daemon_only else "native"
    marker = f"{MARKER} type={plugin_type} version={pycni.__version__} kind={kind}"
    try:
        binary = compile_forwarder(compiler, plugin_type, fallback, marker)
    except BuildError as err:
        raise InstallError(str(err)) from err
    changed = False
    if fallback is not None:
        fallback.parent.mkdir(mode=0o755, exist_ok=True)
        changed = _write(fallback, launcher_text(plugin_type, fallback=True).encode())  # before its caller
    changed = _write(target, binary) or changed
    return Installed(target, changed, kind)


def install(
    bin_dir: Path,
    types: list[str] | None = None,
    force: bool = False,
    launcher: LauncherKind = "auto",
    cc: str | None = None,
    daemon_only: bool = False,
) -> Installation:
    """Install every type (or `types`); refuses before writing anything if one would clobber.

    `daemon_only` needs the native forwarder: a Python launcher is its own fallback.
    """
    wanted = types or list(PLUGINS)
    unknown = [t for t in wanted if t not in PLUGINS]
    if unknown:
        raise InstallError(f"unknown plugin types {unknown}; known: {sorted(PLUGINS)}")
    compiler, why_not = (None, "") if launcher == "python" else find_compiler(cc, MARKER)
    if compiler is None and (launcher == "native" or daemon_only):
        reason = why_not or "the Python launcher was asked for"
        raise InstallError(f"cannot install the native forwarder: {reason}")
    bin_dir.mkdir(parents=True, exist_ok=True)
    targets = [bin_dir / t for t in wanted]
    if compiler is not None and not daemon_only:
        targets += [fallback_path(bin_dir, t) for t in wanted]
    _check_clobber(targets, force)
    items = [install_one(bin_dir, t, force, compiler, daemon_only) for t in wanted]
    note = f"{why_not}: installed the Python launcher instead" if why_not else ""
    return Installation(items, "native" if compiler else "python", note)


def install_prebuilt(
    bin_dir: Path, source_dir: Path, types: list[str], force: bool = False
) -> list[Installed]:
    """Copy executables built elsewhere (an image's daemon-only forwarders) into `bin_dir`.

    Each is ours (refused otherwise), and replaces its target atomically, so a runtime exec'ing
    a plugin during an upgrade runs the old file or the new one, never half of one.
    """
    sources = [source_dir / t for t in types]
    foreign = [str(s) for s in sources if not is_ours(s)]
    if foreign:
        raise InstallError(f"not pycni executables: {', '.join(foreign)}")
    _check_clobber([bin_dir / t for t in types], force)
    bin_dir.mkdir(parents=True, exist_ok=True)
    return [
        Installed(bin_dir / t, _write(bin_dir / t, (source_dir / t).read_bytes()), "prebuilt") for t in types
    ]

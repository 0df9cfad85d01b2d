"""`pycni install`: one executable per type, idempotent, never clobbering foreign files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pycni.install import FALLBACK_DIR, is_ours
from pycni.registry import PLUGINS

KINDS = ["python", "native"]
ELF = b"\x7fELF"


def pycni(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycni", *args], capture_output=True, text=True, check=False, env=env
    )


def installed(bin_dir: Path) -> list[str]:
    return sorted(p.name for p in bin_dir.iterdir() if p.name != FALLBACK_DIR)


@pytest.mark.parametrize("kind", KINDS)
def test_install_writes_every_type_executable(tmp_path: Path, kind: str) -> None:
    proc = pycni("install", "--bin-dir", str(tmp_path), "--launcher", kind)
    assert proc.returncode == 0, proc.stderr
    assert installed(tmp_path) == sorted(PLUGINS)
    assert all(p.stat().st_mode & 0o111 for p in tmp_path.iterdir())
    assert proc.stdout.count(f"installed {kind} ") == len(PLUGINS)
    head = (tmp_path / "host-device").read_bytes()
    if kind == "python":
        assert head.decode().count("'host-device'") == 1
        assert not (tmp_path / FALLBACK_DIR).exists()
    else:
        assert head.startswith(ELF) and b"type=host-device" in head
        fallbacks = tmp_path / FALLBACK_DIR
        assert sorted(p.name for p in fallbacks.iterdir()) == sorted(PLUGINS)
        assert "run_here('host-device')" in (fallbacks / "host-device").read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_install_is_idempotent(tmp_path: Path, kind: str) -> None:
    pycni("install", "--bin-dir", str(tmp_path), "--launcher", kind)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files}
    again = pycni("install", "--bin-dir", str(tmp_path), "--launcher", kind)
    assert again.returncode == 0 and "installed" not in again.stdout
    assert again.stdout.count(f"unchanged {kind} ") == len(PLUGINS)
    assert {p: p.stat().st_mtime_ns for p in files} == before


@pytest.mark.parametrize("kind", KINDS)
def test_install_refuses_a_foreign_file_unless_forced(tmp_path: Path, kind: str) -> None:
    foreign = tmp_path / "bridge"
    foreign.write_text("#!/bin/sh\necho reference bridge\n")
    proc = pycni("install", "--bin-dir", str(tmp_path), "--launcher", kind)
    assert proc.returncode != 0 and "did not write" in proc.stderr
    assert foreign.read_text() == "#!/bin/sh\necho reference bridge\n"
    assert not (tmp_path / "vxlan").exists()  # refused before writing anything
    forced = pycni("install", "--bin-dir", str(tmp_path), "--force", "--launcher", kind)
    assert forced.returncode == 0
    assert is_ours(foreign)


def test_switching_kinds_replaces_our_own_files(tmp_path: Path) -> None:
    assert pycni("install", "--bin-dir", str(tmp_path), "--launcher", "native").returncode == 0
    assert (tmp_path / "bridge").read_bytes().startswith(ELF)
    assert pycni("install", "--bin-dir", str(tmp_path), "--launcher", "python").returncode == 0
    assert (tmp_path / "bridge").read_text().startswith("#!")
    assert pycni("install", "--bin-dir", str(tmp_path), "--launcher", "native").returncode == 0
    assert (tmp_path / "bridge").read_bytes().startswith(ELF)


def test_a_foreign_file_in_the_fallback_dir_is_not_clobbered(tmp_path: Path) -> None:
    (tmp_path / FALLBACK_DIR).mkdir()
    foreign = tmp_path / FALLBACK_DIR / "bridge"
    foreign.write_text("mine\n")
    proc = pycni("install", "--bin-dir", str(tmp_path), "--launcher", "native")
    assert proc.returncode != 0 and str(foreign) in proc.stderr
    assert foreign.read_text() == "mine\n" and not (tmp_path / "bridge").exists()


def without_compiler(tmp_path: Path) -> dict[str, str]:
    """An environment whose $CC is missing and whose PATH has no cc (only python is reachable)."""
    bare = tmp_path / "path"
    bare.mkdir()
    assert shutil.which("cc", path=str(bare)) is None
    return {**os.environ, "CC": str(tmp_path / "no-such-cc"), "PATH": str(bare)}


def test_without_a_compiler_auto_installs_the_python_launcher_and_says_so(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    proc = pycni("install", "--bin-dir", str(bin_dir), env=without_compiler(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "no C compiler" in proc.stdout and "installed the Python launcher instead" in proc.stdout
    assert proc.stdout.count("installed python ") == len(PLUGINS)
    version = subprocess.run(
        [str(bin_dir / "bridge")],
        input=b'{"cniVersion":"1.0.0"}',
        env={"CNI_COMMAND": "VERSION", "PYCNI_DAEMON": "off"},
        capture_output=True,
        check=False,
    )
    assert version.returncode == 0 and b"supportedVersions" in version.stdout


def test_without_a_compiler_native_is_an_error(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    proc = pycni("install", "--bin-dir", str(bin_dir), "--launcher", "native", env=without_compiler(tmp_path))
    assert proc.returncode == 1 and "cannot install the native forwarder" in proc.stderr
    assert not bin_dir.exists() or not any(bin_dir.iterdir())

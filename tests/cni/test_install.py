"""`pycni install`: one executable per type, idempotent, never clobbering foreign files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pycni.registry import PLUGINS


def pycni(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pycni", *args], capture_output=True, text=True, check=False)


def test_install_writes_every_type_executable(tmp_path: Path) -> None:
    proc = pycni("install", "--bin-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(PLUGINS)
    assert all(p.stat().st_mode & 0o111 for p in tmp_path.iterdir())
    assert (tmp_path / "host-device").read_text().count("'host-device'") == 1


def test_install_is_idempotent(tmp_path: Path) -> None:
    pycni("install", "--bin-dir", str(tmp_path))
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = pycni("install", "--bin-dir", str(tmp_path))
    assert again.returncode == 0 and "installed" not in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_install_refuses_a_foreign_file_unless_forced(tmp_path: Path) -> None:
    foreign = tmp_path / "bridge"
    foreign.write_text("#!/bin/sh\necho reference bridge\n")
    proc = pycni("install", "--bin-dir", str(tmp_path))
    assert (proc.returncode != 0 and "not written by pycni" in proc.stderr) or "did not write" in proc.stderr
    assert foreign.read_text() == "#!/bin/sh\necho reference bridge\n"
    assert not (tmp_path / "vxlan").exists()  # refused before writing anything
    forced = pycni("install", "--bin-dir", str(tmp_path), "--force")
    assert forced.returncode == 0
    assert "pycni-launcher" in foreign.read_text()

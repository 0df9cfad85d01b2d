"""`python -m pycni.device_plugin` as a process: config errors, serving, SIGTERM cleanup; and the
committed gRPC stubs being exactly what the generator makes. Fake sysfs stands in for hardware."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pycni.k8s import protogen
from tests.device_plugin.conftest import CONFIG, PREFIX
from tests.device_plugin.kubelet import FakeKubelet, Stream, wait_for
from tests.helpers.fake_sysfs import build_sriov_node

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pycni.device_plugin", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_invalid_config_exits_non_zero_naming_the_entry(workdir: Path) -> None:
    conf = workdir / "config.json"
    conf.write_text(
        json.dumps({"resourceList": [{"resourceName": "a"}, {"resourceName": "b", "selectors": 3}]})
    )
    out = run_cli("--config", str(conf), "--sysfs-root", str(workdir))
    assert out.returncode == 2
    assert "resourceList[1] (b): selectors" in out.stderr
    assert not (workdir / "device-plugins").exists()  # refused before touching anything


def test_missing_config_file_is_a_clear_error(workdir: Path) -> None:
    out = run_cli("--config", str(workdir / "nope.json"))
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_process_serves_registers_and_cleans_up_on_sigterm(workdir: Path) -> None:
    node = build_sriov_node(workdir / "sys")
    conf = workdir / "config.json"
    conf.write_text(json.dumps(CONFIG))
    kubelet = FakeKubelet(workdir / "device-plugins")
    kubelet.dir.mkdir()
    kubelet.start()
    args = [
        "--config", str(conf), "--resource-prefix", PREFIX, "--sysfs-root", str(node.sysfs.root),
        "--kubelet-dir", str(kubelet.dir), "--plugins-registry-dir", str(workdir / "no-registry"),
        "--device-info-dir", str(workdir / "devinfo"), "--cdi-dir", str(workdir / "cdi"), "--no-udev",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "pycni.device_plugin", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: len(kubelet.registrations) == 4, timeout=20, what="the process to register 4 pools")
        stream = Stream(kubelet.dir / f"{PREFIX}_sriov_a.sock")
        try:
            assert len(stream.next()) == 4
        finally:
            stream.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert [p.name for p in kubelet.dir.iterdir()] == ["kubelet.sock"]
        logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert any(entry["msg"] == "registered with kubelet" and entry["resource"] for entry in logs)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        kubelet.stop()


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    committed = ROOT / protogen.API_DIR
    recorded = (committed / protogen.VERSION_FILE).read_text().split()[-1]
    if recorded != protogen.tools_version():
        pytest.fail(f"stubs were made with grpcio-tools {recorded}, {protogen.tools_version()} is installed: "
                    "run scripts/gen_protos.sh")  # fmt: skip
    for path in protogen.generate(tmp_path):
        mine = committed / path.name
        assert mine.exists(), f"{path.name} is not committed"
        assert mine.read_bytes() == path.read_bytes(), f"{path.name} differs: run scripts/gen_protos.sh"

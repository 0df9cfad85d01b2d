"""`pycni exec`: a conflist run like a runtime would, with libcni's result cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RECORDER = """#!{python}
import json, os, sys
conf = json.load(sys.stdin)
name = os.path.basename(sys.argv[0])
with open({record!r}, "a") as f:
    f.write(json.dumps({{"plugin": name, "cmd": os.environ["CNI_COMMAND"], "conf": conf}}) + "\\n")
if os.environ["CNI_COMMAND"] == "ADD":
    prev = conf.get("prevResult") or {{"cniVersion": conf["cniVersion"], "ips": []}}
    prev["ips"] = prev.get("ips", []) + [{{"address": "10.3.0.%d/24" % (len(prev.get("ips", [])) + 2)}}]
    print(json.dumps(prev))
"""


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "calls.jsonl"
    for name in ("first", "second"):
        exe = bin_dir / name
        exe.write_text(RECORDER.format(python=sys.executable, record=str(record)))
        exe.chmod(0o755)
    conf = tmp_path / "net.conflist"
    conf.write_text(
        json.dumps(
            {
                "cniVersion": "1.1.0",
                "name": "chain",
                "plugins": [
                    {"type": "first", "capabilities": {"mac": True}},
                    {"type": "second", "custom": 7},
                ],
            }
        )
    )
    return {"bin": bin_dir, "record": record, "conf": conf, "cache": tmp_path / "cache"}


def pycni_exec(setup: dict[str, Path], command: str, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "pycni",
        "exec",
        command,
        "--conf",
        str(setup["conf"]),
        "--netns",
        "/run/netns/whatever",
        "--ifname",
        "net1",
        "--container-id",
        "c1",
        "--cni-path",
        str(setup["bin"]),
        "--cache-dir",
        str(setup["cache"]),
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def calls(setup: dict[str, Path]) -> list[dict[str, Any]]:
    lines = setup["record"].read_text().splitlines() if setup["record"].exists() else []
    setup["record"].unlink(missing_ok=True)
    return [json.loads(line) for line in lines]


def test_add_chains_prev_result_and_caches_it(setup: dict[str, Path]) -> None:
    proc = pycni_exec(setup, "add", "--capability-args", '{"mac": "0a:00:00:00:00:01", "ips": ["1.2.3.4"]}')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert [ip["address"] for ip in result["ips"]] == ["10.3.0.2/24", "10.3.0.3/24"]
    first, second = calls(setup)
    assert (first["plugin"], second["plugin"]) == ("first", "second")
    assert first["conf"]["runtimeConfig"] == {"mac": "0a:00:00:00:00:01"}  # only capabilities it declared
    assert "capabilities" not in first["conf"] and "runtimeConfig" not in second["conf"]
    assert second["conf"]["prevResult"]["ips"][0]["address"] == "10.3.0.2/24"
    assert second["conf"]["name"] == "chain" and second["conf"]["custom"] == 7
    cached = json.loads((setup["cache"] / "results" / "chain-c1-net1").read_text())
    assert cached["kind"] == "cniCacheV1" and cached["result"] == result


def test_check_and_del_use_the_cache_and_del_runs_in_reverse(setup: dict[str, Path]) -> None:
    pycni_exec(setup, "add")
    calls(setup)
    assert pycni_exec(setup, "check").returncode == 0
    checks = calls(setup)
    assert [c["cmd"] for c in checks] == ["CHECK", "CHECK"]
    assert all(len(c["conf"]["prevResult"]["ips"]) == 2 for c in checks)
    assert pycni_exec(setup, "del").returncode == 0
    dels = calls(setup)
    assert [(c["plugin"], c["cmd"]) for c in dels] == [("second", "DEL"), ("first", "DEL")]
    assert not (setup["cache"] / "results" / "chain-c1-net1").exists()
    assert pycni_exec(setup, "check").returncode != 0  # nothing cached any more


def test_gc_sends_the_cached_attachments_as_the_valid_list(setup: dict[str, Path]) -> None:
    pycni_exec(setup, "add")
    calls(setup)
    assert pycni_exec(setup, "gc").returncode == 0
    gcs = calls(setup)
    assert [c["cmd"] for c in gcs] == ["GC", "GC"]
    expected = [{"containerID": "c1", "ifname": "net1"}]
    assert all(
        c["conf"]["cni.dev/valid-attachments"] == expected == c["conf"]["cni.dev/attachments"] for c in gcs
    )


def test_errors_are_spec_objects(setup: dict[str, Path]) -> None:
    setup["conf"].write_text("{broken")
    proc = pycni_exec(setup, "add")
    assert proc.returncode != 0 and json.loads(proc.stdout)["code"] == 6

"""Run an installed plugin executable the way a runtime does: env, stdin, stdout, exit code."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.netns import Netns

ALL_SPEC_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def has_interfaces(v: str) -> bool:
    return v not in ("0.1.0", "0.2.0")


def has_check(v: str) -> bool:
    return v in ("0.4.0", "1.0.0", "1.1.0")


def has_gc(v: str) -> bool:
    return v == "1.1.0"


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def error_code(self) -> int | None:
        data = self.json
        return data.get("code") if self.code != 0 and isinstance(data, dict) else None

    def ok(self) -> Any:
        assert self.code == 0, f"plugin failed ({self.code}): {self.stdout} {self.stderr}"
        return self.json


@dataclass
class Runner:
    """Exec'ing the plugins in `bin_dir`, with defaults a runtime would pass."""

    bin_dir: Path
    extra_env: dict[str, str] | None = None

    def __call__(
        self,
        plugin_type: str,
        command: str,
        conf: dict[str, Any] | bytes | str | None = None,
        *,
        container_id: str | None = "ctr-0",
        netns: str | None = None,
        ifname: str | None = "eth0",
        cni_args: str | None = None,
        env: dict[str, str] | None = None,
        netns_exec: str | None = None,
        timeout: float = 120,
    ) -> Outcome:
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CNI_COMMAND": command,
            "CNI_PATH": str(self.bin_dir),
        }
        for key, value in (
            ("CNI_CONTAINERID", container_id),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
            ("CNI_ARGS", cni_args),
        ):
            if value is not None:
                full_env[key] = value
        full_env.update(self.extra_env or {})
        full_env.update(env or {})
        stdin = (
            conf
            if isinstance(conf, bytes)
            else (conf.encode() if isinstance(conf, str) else json.dumps(conf or {}).encode())
        )
        argv = [str(self.bin_dir / plugin_type)]
        if netns_exec:
            argv = ["ip", "netns", "exec", netns_exec, *argv]
        proc = subprocess.run(
            argv, input=stdin, env=full_env, capture_output=True, timeout=timeout, check=False
        )
        return Outcome(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def in_node(
    runner: Runner,
    node: Netns,
    env: dict[str, str],
    plugin_type: str,
    command: str,
    conf: dict[str, Any],
    pod: Netns | None,
    *,
    container_id: str,
    ifname: str,
    netns: str | None = None,
    cni_args: str | None = None,
) -> Outcome:
    """Exec `plugin_type` as the node's runtime does: inside the node's netns, for `pod` (or `netns`)."""
    path = netns if netns is not None else (pod.path if pod is not None else "")
    return runner(
        plugin_type,
        command,
        conf,
        netns=path,
        container_id=container_id,
        ifname=ifname,
        cni_args=cni_args,
        netns_exec=node.name,
        env=env,
    )

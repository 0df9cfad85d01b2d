"""The kubelet's part in scripts/demo_sriov.sh: serve kubelet.sock, let the device plugin register,
read what it advertises, allocate one VF to a pod, then keep serving until told to stop.

Usage: demo_kubelet.py --dir DIR --resource pycni.io/sriov_demo --out FILE
Writes the allocated device ID (the VF's PCI address) to FILE, once, then waits for SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pycni.k8s.api import deviceplugin_v1beta1_pb2 as dp
from tests.helpers.kubelet import FakeKubelet, plugin

REGISTRATION_TIMEOUT = 60.0


def wait_for_registration(kubelet: FakeKubelet, resource: str) -> Any:
    deadline = time.monotonic() + REGISTRATION_TIMEOUT
    while not kubelet.registered(resource):
        if time.monotonic() > deadline:
            raise SystemExit(f"kubelet: {resource} did not register within {REGISTRATION_TIMEOUT:.0f}s")
        time.sleep(0.05)  # polling for the plugin's Register call, with a deadline
    return kubelet.registered(resource)[-1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--resource", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    kubelet = FakeKubelet(args.dir)
    kubelet.start()
    try:
        reg = wait_for_registration(kubelet, args.resource)
        print(f"kubelet: {reg.resource_name} registered, endpoint {reg.endpoint}", flush=True)
        stub = plugin(args.dir / reg.endpoint)
        stream = stub.ListAndWatch(dp.Empty())
        devices = next(stream).devices
        stream.cancel()
        for dev in devices:
            print(f"kubelet:   advertised {dev.ID} {dev.health}", flush=True)
        chosen = next(d.ID for d in devices if d.health == "Healthy")
        request = dp.AllocateRequest(container_requests=[dp.ContainerAllocateRequest(devices_ids=[chosen])])
        response = stub.Allocate(request, timeout=10).container_responses[0]
        for key, value in sorted(response.envs.items()):
            print(f"kubelet:   Allocate({chosen}) -> {key}={value}", flush=True)
        args.out.write_text(chosen)
        stop.wait()
    finally:
        kubelet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

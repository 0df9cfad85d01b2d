"""The demo's DRA driver: `pycni dra-driver`'s own service (discovery, pools, attributes, slices),
publishing its ResourceSlices into a manifest directory instead of an API server, since the demo
node has none. It runs until the node's pool is published, then stops, leaving the slices.

    python scripts/demo_dra_driver.py --config C --sysfs-root S --links-netns NS --work W --manifests M
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pycni.dra.cli import load
from pycni.dra.options import Options
from pycni.dra.service import DraDriverService

NODE = "demo-node"


class ManifestSlices:
    """The ResourceApi calls the publisher makes, over `resourceslice-<name>.json` files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._names = itertools.count(1)

    def node_uid(self, name: str) -> str:
        return f"uid-{name}"

    def slices(self, driver: str, node: str) -> list[dict[str, Any]]:
        found = [json.loads(p.read_text()) for p in sorted(self.directory.glob("resourceslice-*.json"))]
        return [s for s in found if s["spec"]["driver"] == driver and s["spec"]["nodeName"] == node]

    def create_slice(self, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        meta["name"] = f"{meta.pop('generateName')}{next(self._names)}"
        return self.update_slice(body)

    def update_slice(self, body: dict[str, Any]) -> dict[str, Any]:
        body["metadata"]["resourceVersion"] = str(time.monotonic_ns())
        (self.directory / f"resourceslice-{body['metadata']['name']}.json").write_text(
            json.dumps(body, indent=1)
        )
        return body

    def delete_slice(self, name: str) -> None:
        (self.directory / f"resourceslice-{name}.json").unlink(missing_ok=True)

    def claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None  # the demo's kubelet prepares nothing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ("--config", "--sysfs-root", "--work", "--manifests"):
        parser.add_argument(flag, type=Path, required=True)
    parser.add_argument("--links-netns", required=True)
    args = parser.parse_args()
    opts = Options(
        config_path=args.config, node_name=NODE, sysfs_root=args.sysfs_root, links_netns=args.links_netns,
        plugins_dir=args.work / "plugins", registry_dir=args.work / "registry", cdi_dir=args.work / "cdi",
        use_udev=False,
    )  # fmt: skip
    service = DraDriverService(opts, load(opts), api=ManifestSlices(args.manifests))  # type: ignore[arg-type]
    service.start()
    deadline = time.monotonic() + 30
    while not service.publisher.in_sync:
        if time.monotonic() > deadline:
            print("the driver did not publish its pool", file=sys.stderr)
            return 1
        time.sleep(0.05)
    service.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CDI spec files: one per pool, telling container runtimes what a `<prefix>/net-pci=<pci>` name means.

A runtime may read the directory at any moment, so a spec is written to a temp file and renamed
into place; no fsync, because it lives under /var/run (tmpfs), means nothing after a reboot and is
rewritten on every pool change. Named `pycni-<resource with / as ->.json`, mode 0644. The spec's
content is built by `allocate.cdi_spec`; NPWG device-info files are `pycni.hw.devinfo`'s.
"""

from __future__ import annotations

import json
from pathlib import Path

from pycni.cni.files import write_atomic

#: Where container runtimes look for CDI specs (the CDI default for generated specs).
CDI_DIR = Path("/var/run/cdi")


def spec_path(directory: Path, resource: str) -> Path:
    return directory / f"pycni-{resource.replace('/', '-')}.json"


def write_spec(directory: Path, resource: str, spec: dict[str, object]) -> None:
    # Shared with the runtime and other vendors' specs: a missing directory gets the default mode,
    # not the owner-only one write_atomic gives the directories it creates.
    directory.mkdir(parents=True, exist_ok=True)
    data = json.dumps(spec, sort_keys=True).encode()
    write_atomic(spec_path(directory, resource), data, 0o644, durable=False)


def remove_spec(directory: Path, resource: str) -> None:
    spec_path(directory, resource).unlink(missing_ok=True)

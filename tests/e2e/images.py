"""Container images built here, with no registry: a pause image for containerd, a busybox one for podman.

Both are made from files on this machine (a static `pause` compiled from the C below, Debian's
static busybox) into an OCI image layout tar, the format `ctr images import` and `podman load`
take. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGINT, quit);
    signal(SIGTERM, quit);
    signal(SIGCHLD, reap);
    for (;;)
        pause();
}
"""

#: busybox applets the podman tests use inside containers.
BUSYBOX_APPLETS = ("sh", "ping", "nc", "ip", "sleep", "cat", "echo", "hostname", "ls")
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _blob(out: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest.split(':')[1]}")
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))
    return digest, len(data)


def _add_file(layer: tarfile.TarFile, name: str, source: Path, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    data = source.read_bytes()
    info.size, info.mode = len(data), mode
    layer.addfile(info, io.BytesIO(data))


def _add_dir(layer: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    layer.addfile(info)


def _add_link(layer: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    layer.addfile(info)


def oci_archive(path: Path, ref: str, layer: bytes, config: dict[str, Any]) -> Path:
    """An OCI image layout tar holding one image `ref` with one uncompressed layer."""
    with tarfile.open(path, "w") as out:
        layer_digest, layer_size = _blob(out, layer)
        image_config = {
            "architecture": _arch(),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
        config_digest, config_size = _blob(out, json.dumps(image_config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
        }
        manifest_digest, manifest_size = _blob(out, json.dumps(manifest).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "annotations": {
                        "io.containerd.image.name": ref,
                        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
                    },
                }
            ],
        }
        for name, data in (
            ("index.json", json.dumps(index).encode()),
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return path


def _arch() -> str:
    machine = subprocess.run(["uname", "-m"], capture_output=True, text=True, check=True).stdout.strip()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def pause_image(path: Path, ref: str) -> Path:
    """The sandbox image: a static pause binary that sleeps until SIGTERM/SIGINT and reaps children."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler to build the pause image")
    with tempfile.TemporaryDirectory() as work:
        source, binary = Path(work) / "pause.c", Path(work) / "pause"
        source.write_text(PAUSE_C)
        subprocess.run([compiler, "-static", "-O2", "-s", "-o", str(binary), str(source)], check=True)
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            _add_file(tar, "pause", binary)
    return oci_archive(path, ref, layer.getvalue(), {"Entrypoint": ["/pause"]})


def busybox_image(path: Path, ref: str) -> Path:
    """A busybox image (ping, nc, ip, sh), from Debian's static busybox."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox is not installed (Debian package busybox-static)")
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for directory in ("bin", "etc", "tmp", "proc", "sys", "dev", "run"):
            _add_dir(tar, directory)
        _add_file(tar, "bin/busybox", Path(busybox))
        for applet in BUSYBOX_APPLETS:
            _add_link(tar, f"bin/{applet}", "busybox")
    config = {"Cmd": ["/bin/sleep", "3600"], "Env": ["PATH=/bin"]}
    return oci_archive(path, ref, layer.getvalue(), config)

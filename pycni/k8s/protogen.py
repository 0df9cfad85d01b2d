"""Regenerates the committed gRPC stubs under `pycni/k8s/api/` from our `.proto` files.

The stubs are committed so the daemon needs only grpcio and protobuf at runtime; this module
(run by `scripts/gen_protos.sh`, and by a test into a temp dir) proves they still match the
protos and the pinned grpcio-tools. Output is written relative to `out_root` with the same
package-qualified paths, so generated imports read `from pycni.k8s.api import ...`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
API_DIR = Path("pycni") / "k8s" / "api"
PROTOS = (
    "deviceplugin_v1beta1.proto",
    "pluginregistration_v1.proto",
    "podresources_v1.proto",
    "dra_v1.proto",
    "dra_v1beta1.proto",
    "drahealth_v1alpha1.proto",
    "drahealth_v1.proto",
)
VERSION_FILE = "GENERATED_WITH"


def tools_version() -> str:
    from importlib.metadata import version

    return version("grpcio-tools")


def generate(out_root: Path, src_root: Path = REPO_ROOT) -> list[Path]:
    """Runs protoc (from grpcio-tools) on every proto; returns the files written under `out_root`."""
    from grpc_tools import protoc  # heavy and dev-only: imported on use

    include = Path(protoc.__file__).parent / "_proto"
    (out_root / API_DIR).mkdir(parents=True, exist_ok=True)
    for name in PROTOS:
        args = [
            "grpc_tools.protoc",
            f"-I{src_root}",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(API_DIR / name),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {API_DIR / name}")
    (out_root / API_DIR / VERSION_FILE).write_text(f"grpcio-tools {tools_version()}\n")
    return sorted(
        p for p in (out_root / API_DIR).iterdir() if p.suffix in (".py", ".pyi") or p.name == VERSION_FILE
    )


def main() -> int:
    written = generate(REPO_ROOT)
    for path in written:
        print(path.relative_to(REPO_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/bin/sh
# Regenerates pycni/k8s/api/*_pb2*.py(i) from the .proto files next to them.
# Uses the repository's dev venv (grpcio-tools pinned there); commit the result.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m pycni.k8s.protogen

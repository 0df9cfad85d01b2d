#!/usr/bin/env bash
# Build pycni into ROOT, as the image's build stage does (ROOT=/ there; the tests use a temporary
# directory): a virtual environment at ROOT/opt/pycni/venv with pycni and its dependencies, and the
# daemon-only native forwarders at ROOT/opt/pycni/forwarders, which the CNI DaemonSet's installer
# copies to the host's /opt/cni/bin. Needs python3 (with venv), a C compiler and the C library's
# static archive (libc6-dev).
#
#   deploy/image/build-root.sh ROOT [SOURCE]      SOURCE: the checkout (default) or a built wheel
set -euo pipefail
root=${1:?usage: build-root.sh ROOT [SOURCE]}
source=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
python=${PYTHON:-python3}

prefix="$root/opt/pycni"
mkdir -p "$prefix"
"$python" -m venv "$prefix/venv"
"$prefix/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir "$source"
# The forwarders name no interpreter: they run on the host, where this one does not exist.
"$prefix/venv/bin/pycni" install --bin-dir "$prefix/forwarders" --launcher native --daemon-only
# What a smoke check in the image runs too.
"$prefix/venv/bin/pycni" --help >/dev/null
echo "build-root: pycni in $prefix"

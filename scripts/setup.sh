#!/usr/bin/env bash
# Set up a development machine (Debian 12, as root): system tools, a virtual environment in .venv
# with pycni and its test tools. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# cc and the C library's headers and static archive build the native forwarder (`pycni install`);
# valgrind checks it in the tests.
for tool in ip:iproute2 ping:iputils-ping nft:nftables iptables:iptables iperf3:iperf3 cc:gcc valgrind:valgrind; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool#*:}")
done
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)
# The real callers the end-to-end tests run (tests/e2e): containerd's CRI, podman's CNI backend,
# runc under both, and a static busybox for the podman tests' image.
for tool in containerd:containerd runc:runc podman:podman conmon:conmon busybox:busybox-static; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool#*:}")
done
[ -e "/usr/lib/$(uname -m)-linux-gnu/libc.a" ] || need_apt+=(libc6-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The interpreter by absolute path: a shell shim (pyenv) on PATH costs ~0.2 s per plugin call.
python=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c 'import pycni, pyroute2, pydantic, grpc, pyudev' && echo "setup: ok ($(.venv/bin/python -V))"

#!/usr/bin/env bash
# SR-IOV demo (as root, after `bash scripts/setup.sh`): a node with a fake SR-IOV NIC, the device
# plugin advertising its VFs to a stand-in kubelet, and a pod that gets one VF through `sriov`.
#
# The NIC is scripts/fake_nic.sh's. Everything is removed at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
node="sriov-node-$tag" switch="sriov-sw-$tag" pod="sriov-pod-$tag"
work=$(mktemp -d)
kubelet_pid="" plugin_pid=""
cleanup() {
  for pid in "$plugin_pid" "$kubelet_pid"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  for ns in "$pod" "$switch" "$node"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

export PYCNI_STATE_DIR="$work/state" PYCNI_RUN_DIR="$work/run"
source scripts/fake_nic.sh
.venv/bin/pycni install --bin-dir "$work/bin" >/dev/null

echo "== a node with PF ens1f0 and four VFs (fake sysfs at $work/sys)"
fake_nic_build
echo "== PF-side VF settings before any pod:"
pf_side
fake_nic_wire 10.56.217.1/24

echo "== the device plugin advertises them to a stand-in kubelet"
mkdir -p "$work/kubelet"
cat > "$work/dp-config.json" <<CONF
{"resourceList": [{"resourceName": "sriov_demo", "selectors": {"pfNames": ["ens1f0"], "drivers": ["iavf"]}}]}
CONF
GRPC_VERBOSITY=NONE .venv/bin/python scripts/demo_kubelet.py --dir "$work/kubelet" --resource pycni.io/sriov_demo \
  --out "$work/allocated" &
kubelet_pid=$!
.venv/bin/pycni device-plugin --config "$work/dp-config.json" --resource-prefix pycni.io \
  --sysfs-root "$work/sys" --kubelet-dir "$work/kubelet" --plugins-registry-dir "$work/no-watcher" \
  --device-info-dir "$work/devinfo/dp" --cdi-dir "$work/cdi" --links-netns "$node" --no-udev \
  2>"$work/device-plugin.log" &
plugin_pid=$!
for _ in $(seq 600); do [ -s "$work/allocated" ] && break; sleep 0.1; done
[ -s "$work/allocated" ] || { echo "no VF was allocated"; cat "$work/device-plugin.log"; exit 1; }
vf=$(cat "$work/allocated")
echo "== kubelet allocated $vf to the pod; multus would hand it to sriov as deviceID"
netdev=$(ls "$work/sys/bus/pci/devices/$vf/net")
echo "== its netdev in the node: $(ip -n "$node" -br link show dev "$netdev")"

cat > "$work/sriov.conflist" <<CONF
{
  "cniVersion": "1.1.0",
  "name": "demo-sriov",
  "plugins": [{
    "type": "sriov",
    "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true},
    "mac": "0a:58:0a:38:d9:10", "vlan": 100, "spoofchk": "on", "trust": "off",
    "ipam": {"type": "host-local", "dataDir": "$work/ipam",
             "ranges": [[{"subnet": "10.56.217.0/24", "gateway": "10.56.217.1"}]]}
  }]
}
CONF
pycni_exec() {  # inside the node netns, as kubelet's runtime would run the plugin there
  ip netns exec "$node" .venv/bin/pycni exec "$@" --conf "$work/sriov.conflist" --netns "$pod" \
    --ifname net1 --container-id "pod-$tag" --cni-path "$work/bin" --cache-dir "$work/cache" \
    --capability-args "{\"deviceID\": \"$vf\", \"CNIDeviceInfoFile\": \"$work/devinfo/cni/pod-$tag\"}"
}

echo "== ADD"
pycni_exec add
echo "== in the pod:"
ip -n "$pod" -br addr show dev net1
echo "== PF-side VF settings now:"
pf_side
echo "== device-info for the pod: $(cat "$work/devinfo/cni/pod-$tag")"
echo "== pod -> gateway 10.56.217.1 over its VF"
ip netns exec "$pod" ping -c 2 -W 2 10.56.217.1
pycni_exec check && echo "== CHECK ok"

echo "== DEL gives the VF back"
pycni_exec del
echo "== its netdev in the node again: $(ip -n "$node" -br link show dev "$netdev")"
echo "== PF-side VF settings after DEL (as before the pod):"
pf_side
echo "== pod interfaces left: $(ip -n "$pod" -o link show | grep -vc ' lo:' || true);" \
  "state files left: $(find "$work/state" -type f | wc -l)"

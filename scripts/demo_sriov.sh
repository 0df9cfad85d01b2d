#!/usr/bin/env bash
# SR-IOV demo (as root, after `bash scripts/setup.sh`): a node with a fake SR-IOV NIC, the device
# plugin advertising its VFs to a stand-in kubelet, and a pod that gets one VF through `sriov`.
#
# The NIC is a fake sysfs tree (PF ens1f0 with four iavf VFs); each VF's netdev is a veth end in the
# node netns, named as the tree names it, whose peer sits in a "switch" netns holding the gateway.
# PF-side VF settings (MAC, VLAN, spoof check, trust) go to a JSON file (PYCNI_SRIOV_VF_STATE)
# instead of a PF. Everything is removed at the end, also on failure.
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

export PYCNI_SYSFS_ROOT="$work/sys" PYCNI_STATE_DIR="$work/state" PYCNI_RUN_DIR="$work/run"
export PYCNI_SRIOV_VF_STATE="$work/vf-state.json"
.venv/bin/pycni install --bin-dir "$work/bin" >/dev/null

echo "== a node with PF ens1f0 and four VFs (fake sysfs at $PYCNI_SYSFS_ROOT)"
.venv/bin/python - "$work/sys" <<'PY'
import sys
sys.path.insert(0, ".")
from tests.helpers.fake_sysfs import build_sriov_node
node = build_sriov_node(sys.argv[1], (("ens1f0", 0x3B, 0, "154c", ("iavf",) * 4),))
for vf in node.vfs:
    print(f"   VF {vf.index}: {vf.address} driver {vf.driver} netdev {vf.netdev}")
PY
cat > "$PYCNI_SRIOV_VF_STATE" <<STATE
{"ens1f0": {"0": {"mac": "02:00:00:00:3b:00", "vlan": 7, "spoofchk": false},
            "1": {"mac": "02:00:00:00:3b:01", "vlan": 7, "spoofchk": false},
            "2": {"mac": "02:00:00:00:3b:02", "vlan": 7, "spoofchk": false},
            "3": {"mac": "02:00:00:00:3b:03", "vlan": 7, "spoofchk": false}}}
STATE
pf_side() {  # the state file, as `ip link show ens1f0` would list the VFs
  .venv/bin/python - "$PYCNI_SRIOV_VF_STATE" <<'PY'
import json, sys
for index, vf in sorted(json.load(open(sys.argv[1]))["ens1f0"].items()):
    print(f"   vf {index}: link/ether {vf['mac']}, vlan {vf.get('vlan', 0)}, spoof checking "
          f"{'on' if vf.get('spoofchk', True) else 'off'}, trust {'on' if vf.get('trust') else 'off'}")
PY
}
echo "== PF-side VF settings before any pod:"
pf_side
for ns in "$node" "$switch" "$pod"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$switch" link add br0 type bridge
ip -n "$switch" addr add 10.56.217.1/24 dev br0
ip -n "$switch" link set br0 up
ip -n "$switch" link add pf type veth peer name ens1f0 netns "$node"
for i in 0 1 2 3; do
  ip -n "$switch" link add "vf$i" type veth peer name "ens1f0v$i" netns "$node"
  ip -n "$switch" link set "vf$i" master br0 up
  ip -n "$node" link set "ens1f0v$i" up
done
ip -n "$switch" link set pf up
ip -n "$node" link set ens1f0 up

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

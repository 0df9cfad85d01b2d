# The fake SR-IOV NIC of the SR-IOV demos, sourced by them (needs $work, $node and $switch set).
#
# A fake sysfs tree (PF ens1f0 with four iavf VFs) under $work/sys; PF-side VF settings in a JSON
# file ($work/vf-state.json, PYCNI_SRIOV_VF_STATE) instead of a PF; each VF's netdev a veth end in
# the $node netns, named as the tree names it, whose peer sits on a bridge in the $switch netns
# holding the gateway.

fake_nic_build() {  # the sysfs tree and the PF-side state, exported for the plugins
  export PYCNI_SYSFS_ROOT="$work/sys" PYCNI_SRIOV_VF_STATE="$work/vf-state.json"
  .venv/bin/python - "$PYCNI_SYSFS_ROOT" <<'PY'
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
}

fake_nic_wire() {  # GATEWAY/PREFIX: the node, switch and pod netns ($pod too), the VF veths
  for ns in "$node" "$switch" "$pod"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
  ip -n "$switch" link add br0 type bridge
  ip -n "$switch" addr add "$1" dev br0
  ip -n "$switch" link set br0 up
  ip -n "$switch" link add pf type veth peer name ens1f0 netns "$node"
  for i in 0 1 2 3; do
    ip -n "$switch" link add "vf$i" type veth peer name "ens1f0v$i" netns "$node"
    ip -n "$switch" link set "vf$i" master br0 up
    ip -n "$node" link set "ens1f0v$i" up
  done
  ip -n "$switch" link set pf up
  ip -n "$node" link set ens1f0 up
}

pf_side() {  # [VF index]: the state file, as `ip link show ens1f0` would list the VFs (or one)
  .venv/bin/python - "$PYCNI_SRIOV_VF_STATE" "${1:-}" <<'PY'
import json, sys
vfs = json.load(open(sys.argv[1]))["ens1f0"]
for index, vf in sorted(vfs.items()):
    if sys.argv[2] in ("", index):
        print(f"   vf {index}: link/ether {vf['mac']}, vlan {vf.get('vlan', 0)}, spoof checking "
              f"{'on' if vf.get('spoofchk', True) else 'off'}, trust {'on' if vf.get('trust') else 'off'}")
PY
}

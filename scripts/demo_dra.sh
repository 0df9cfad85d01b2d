#!/usr/bin/env bash
# SR-IOV with DRA demo (as root, after `bash scripts/setup.sh`), from manifests, no API server: the
# DRA driver publishes a fake NIC's VFs as a ResourceSlice, a ResourceClaim is allocated one, multus
# attaches it through `sriov` (the NAD names "<pod claim>/<request>") and writes the VF's network
# data into the claim's status.
#
# The NIC is scripts/fake_nic.sh's. The claim's allocation is written as the scheduler would (the
# first VF). Everything is removed at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
node="dra-node-$tag" switch="dra-sw-$tag" pod="dra-pod-$tag" cid="dra-demo-$tag"
work=$(mktemp -d)
export PYCNI_SYSFS_ROOT="$work/sys" PYCNI_SRIOV_VF_STATE="$work/vf-state.json"
source scripts/fake_nic.sh
multus() {  # CMD: runs multus inside the node namespace, as the runtime would
  ip netns exec "$node" env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID="$cid" \
    CNI_NETNS="/run/netns/$pod" CNI_IFNAME=eth0 CNI_PATH="$work/bin" \
    CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=demo;K8S_POD_INFRA_CONTAINER_ID=$cid" \
    PYCNI_DAEMON=off PYCNI_RUN_DIR="$work/run" PYCNI_STATE_DIR="$work/state" \
    PYCNI_SYSFS_ROOT="$PYCNI_SYSFS_ROOT" PYCNI_SRIOV_VF_STATE="$PYCNI_SRIOV_VF_STATE" \
    "$work/bin/multus" < "$work/multus.conf"
}
cleanup() {
  if [ -e "$work/multus/$cid" ]; then multus DEL >/dev/null 2>&1 || true; fi
  for ns in "$pod" "$switch" "$node"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

.venv/bin/pycni install --bin-dir "$work/bin" >/dev/null
echo "== a node with PF ens1f0 and four VFs (fake sysfs at $PYCNI_SYSFS_ROOT)"
fake_nic_build
fake_nic_wire 10.56.218.1/24

echo "== the DRA driver publishes the VFs (a ResourceSlice in the manifest directory)"
mkdir -p "$work/manifests"
cat > "$work/dra-config.json" <<CONF
{"resourceList": [{"resourceName": "sriov_demo", "selectors": {"pfNames": ["ens1f0"], "drivers": ["iavf"]}}]}
CONF
.venv/bin/python scripts/demo_dra_driver.py --config "$work/dra-config.json" --sysfs-root "$work/sys" \
  --links-netns "$node" --work "$work/dra" --manifests "$work/manifests" 2>"$work/dra-driver.log" \
  || { cat "$work/dra-driver.log"; exit 1; }
.venv/bin/python - "$work/manifests" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("resourceslice-*.json")):
    spec = json.loads(path.read_text())["spec"]
    print(f"   slice of {spec['driver']}, pool {spec['pool']['name']} generation {spec['pool']['generation']}:")
    for dev in spec["devices"]:
        attrs = dev["attributes"]
        print(f"     {dev['name']}: pciBusID {attrs['resource.kubernetes.io/pciBusID']['string']},"
              f" pfName {attrs['pfName']['string']}, vfIndex {attrs['vfIndex']['int']}")
PY
device=$(.venv/bin/python -c 'import json,glob,sys; print(json.load(open(sorted(glob.glob(sys.argv[1]+"/resourceslice-*.json"))[0]))["spec"]["devices"][0]["name"])' "$work/manifests")

echo "== claim demo-vf is allocated $device (the scheduler's part, written here); pod demo names it"
cat > "$work/manifests/objects.yaml" <<YAML
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: demo-vf, namespace: default, uid: uid-demo-vf}
spec:
  devices:
    requests: [{name: vf, exactly: {deviceClassName: sriov.pycni.io}}]
status:
  allocation:
    devices:
      results: [{request: vf, driver: sriov.pycni.io, pool: demo-node, device: $device}]
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: podnet, namespace: kube-system}
spec:
  config: '{"cniVersion": "1.1.0", "name": "podnet", "type": "bridge", "bridge": "dra-br0",
            "isGateway": true, "isDefaultGateway": true,
            "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "10.244.9.0/24"}]]}}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: fast
  namespace: default
  annotations: {k8s.v1.cni.cncf.io/resourceName: nic/vf}
spec:
  config: '{"cniVersion": "1.1.0", "name": "fast", "type": "sriov", "vlan": 100, "spoofchk": "on",
            "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "10.56.218.0/24",
            "rangeStart": "10.56.218.10", "gateway": "10.56.218.1"}]]}}'
---
apiVersion: v1
kind: Pod
metadata:
  name: demo
  namespace: default
  annotations: {k8s.v1.cni.cncf.io/networks: fast}
spec:
  resourceClaims: [{name: nic, resourceClaimName: demo-vf}]
  containers: [{name: app, image: busybox, resources: {claims: [{name: nic}]}}]
YAML
cat > "$work/multus.conf" <<CONF
{"cniVersion": "1.1.0", "name": "multus-cni-network", "type": "multus",
 "clusterNetwork": "podnet", "manifests": "$work/manifests", "cniDir": "$work/multus",
 "binDir": "$work/bin", "confDir": "$work/net.d", "deviceInfoDir": "$work/devinfo",
 "podResourcesSocket": "$work/no-kubelet.sock"}
CONF
echo "== PF-side settings of VF 0 before the pod:"
pf_side 0

echo "== ADD through multus"
multus ADD >/dev/null
echo "== in the pod:"
ip -n "$pod" -br addr show dev net1
echo "== PF-side settings of VF 0 now:"
pf_side 0
echo "== pod -> gateway 10.56.218.1 over its VF"
ip netns exec "$pod" ping -c 2 -W 2 -I net1 10.56.218.1
echo "== the claim's status, as multus wrote it ($work/multus/claim-status/default/demo-vf.json):"
cat "$work/multus/claim-status/default/demo-vf.json"

echo "== DEL gives the VF back"
multus DEL
echo "== its netdev in the node again: $(ip -n "$node" -br link show dev ens1f0v0 | awk '{print $1, $2}')"
echo "== PF-side settings of VF 0 after DEL (as before the pod):"
pf_side 0
echo "== pod interfaces left: $(ip -n "$pod" -o link show | grep -vc ' lo:' || true);" \
  "claim status left: $(find "$work/multus/claim-status" -type f 2>/dev/null | wc -l)"

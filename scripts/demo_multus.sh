#!/usr/bin/env bash
# multus demo (as root; assumes `bash scripts/setup.sh` ran): a node without an API server reads
# its Pods and NetworkAttachmentDefinitions from a manifest directory; a pod gets its cluster
# network (bridge) plus one secondary network (another bridge), pings over both, and DEL takes
# everything away. Everything created is removed at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
node="demo-mnode-$tag" pod="demo-mpod-$tag" cid="demo-multus-$tag"
work=$(mktemp -d)
multus() {  # CMD: runs multus inside the node namespace, as the runtime would
  ip netns exec "$node" env -i PATH="$PATH" CNI_COMMAND="$1" CNI_CONTAINERID="$cid" \
    CNI_NETNS="/run/netns/$pod" CNI_IFNAME=eth0 CNI_PATH="$work/bin" \
    CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=demo;K8S_POD_INFRA_CONTAINER_ID=$cid" \
    PYCNI_DAEMON=off PYCNI_RUN_DIR="$work/run" PYCNI_STATE_DIR="$work/state" \
    "$work/bin/multus" < "$work/multus.conf"
}
cleanup() {
  if [ -e "$work/multus/$cid" ]; then multus DEL >/dev/null 2>&1 || true; fi
  ip netns del "$pod" 2>/dev/null || true
  ip netns del "$node" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

.venv/bin/pycni install --bin-dir "$work/bin" >/dev/null
for ns in "$node" "$pod"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
mkdir -p "$work/manifests"
cat > "$work/manifests/networks.yaml" <<YAML
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: podnet, namespace: kube-system}
spec:
  config: '{"cniVersion": "1.1.0", "name": "podnet", "type": "bridge", "bridge": "demo-mbr0",
            "isGateway": true, "isDefaultGateway": true,
            "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "10.244.7.0/24"}]]}}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: storage, namespace: default}
spec:
  config: '{"cniVersion": "1.1.0", "name": "storage", "type": "bridge", "bridge": "demo-mbr1", "isGateway": true,
            "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "10.245.7.0/24"}]]}}'
---
apiVersion: v1
kind: Pod
metadata:
  name: demo
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/networks: '[{"name": "storage", "interface": "storage0"}]'
spec:
  containers: [{name: app, image: busybox}]
YAML
cat > "$work/multus.conf" <<CONF
{"cniVersion": "1.1.0", "name": "multus-cni-network", "type": "multus",
 "clusterNetwork": "podnet", "manifests": "$work/manifests",
 "cniDir": "$work/multus", "binDir": "$work/bin", "confDir": "$work/net.d"}
CONF

echo "== ADD: pod demo on node namespace $node (cluster network podnet + secondary storage)"
multus ADD | .venv/bin/python -m json.tool
echo "== the pod's interfaces"
ip -n "$pod" -br addr show
echo "== network-status ($work/multus/network-status/default/demo.json)"
cat "$work/multus/network-status/default/demo.json"

echo "== ping the node over each network"
ip netns exec "$pod" ping -c 2 -W 2 -I eth0 10.244.7.1
ip netns exec "$pod" ping -c 2 -W 2 -I storage0 10.245.7.1

echo "== CHECK, then DEL"
multus CHECK && echo "CHECK ok"
multus DEL
echo "== left in the pod: $(ip -n "$pod" -br link show | awk '{print $1}' | tr '\n' ' ')"
echo "== plans left: $(ls "$work/multus" | grep -vc -e '^results$' -e '^network-status$' || true);" \
  "addresses still allocated: $(find "$work/ipam" -type f -name '10.*' | wc -l)"

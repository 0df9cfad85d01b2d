#!/usr/bin/env bash
# Demo (as root): set up, install the plugins, then attach two pods to a bridge on a simulated
# node and ping between them; tear everything down at the end (also on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

tag=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
node="demo-node-$tag" pod1="demo-pod1-$tag" pod2="demo-pod2-$tag"
work=$(mktemp -d)
cleanup() {
  for ns in "$pod1" "$pod2" "$node"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

.venv/bin/pycni install --bin-dir "$work/bin" >/dev/null
for ns in "$node" "$pod1" "$pod2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done

cat > "$work/podnet.conflist" <<CONF
{
  "cniVersion": "1.1.0",
  "name": "demo-podnet",
  "plugins": [{
    "type": "bridge", "bridge": "demo-br0", "isGateway": true, "isDefaultGateway": true,
    "ipMasq": true, "hairpinMode": true, "mtu": 1450,
    "ipam": {"type": "host-local", "dataDir": "$work/ipam",
             "ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:244:1::/64"}]]}
  }]
}
CONF

pycni_exec() {  # runs inside the node namespace, as kubelet would run the plugins there
  ip netns exec "$node" .venv/bin/pycni exec "$@" --conf "$work/podnet.conflist" \
    --cni-path "$work/bin" --cache-dir "$work/cache"
}

echo "== ADD: two pods on bridge demo-br0 in node namespace $node"
pycni_exec add --netns "$pod1" --ifname eth0 --container-id "pod1-$tag" | tee "$work/r1.json"
pycni_exec add --netns "$pod2" --ifname eth0 --container-id "pod2-$tag" > "$work/r2.json"
ip2=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["ips"][0]["address"].split("/")[0])' "$work/r2.json")
ip2v6=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["ips"][1]["address"].split("/")[0])' "$work/r2.json")

echo "== pod1 -> pod2 ($ip2, $ip2v6)"
ip netns exec "$pod1" ping -c 2 -W 2 "$ip2"
ip netns exec "$pod1" ping -c 2 -W 2 "$ip2v6"

echo "== CHECK, then DEL both pods"
pycni_exec check --netns "$pod1" --ifname eth0 --container-id "pod1-$tag" && echo "pod1 CHECK ok"
pycni_exec del --netns "$pod1" --ifname eth0 --container-id "pod1-$tag"
pycni_exec del --netns "$pod2" --ifname eth0 --container-id "pod2-$tag"
left=$(ip -n "$node" -o link show | grep -c veth || true)
echo "== veths left on the node: $left; addresses still allocated: $(ls "$work/ipam/demo-podnet" | grep -c '^[0-9f]' || true)"
echo "demo: ok"

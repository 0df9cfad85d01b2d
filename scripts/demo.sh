#!/usr/bin/env bash
# Demo (as root): set up, install the plugins, then attach two pods to a bridge on a simulated
# node and ping between them; tear everything down at the end (also on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

tag=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
node="demo-node-$tag" pod1="demo-pod1-$tag" pod2="demo-pod2-$tag"
underlay="demo-ul-$tag" vnode1="demo-vn1-$tag" vnode2="demo-vn2-$tag" vpod1="demo-vp1-$tag" vpod2="demo-vp2-$tag"
work=$(mktemp -d)
cleanup() {
  for ns in "$pod1" "$pod2" "$node" "$vpod1" "$vpod2" "$vnode1" "$vnode2" "$underlay"; do
    ip netns del "$ns" 2>/dev/null || true
  done
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

echo
echo "== VXLAN: two nodes joined by an underlay bridge, one pod each, VNI 42 over UDP 4789"
ip netns add "$underlay"; ip -n "$underlay" link add br0 type bridge; ip -n "$underlay" link set br0 up
for i in 1 2; do
  vnode="demo-vn$i-$tag" vpod="demo-vp$i-$tag"
  ip netns add "$vnode"; ip netns add "$vpod"; ip -n "$vpod" link set lo up
  ip -n "$underlay" link add "ul$i-$tag" type veth peer name eth0 netns "$vnode"
  ip -n "$underlay" link set "ul$i-$tag" master br0 up
  ip -n "$vnode" addr add "192.0.2.$i/24" dev eth0; ip -n "$vnode" link set eth0 up
  cat > "$work/vx$i.conflist" <<CONF
{"cniVersion": "1.1.0", "name": "demo-overlay", "plugins": [{
  "type": "vxlan", "vni": 42, "remotes": ["192.0.2.1", "192.0.2.2"],
  "ipam": {"type": "host-local", "dataDir": "$work/vxipam$i",
           "ranges": [[{"subnet": "10.42.0.0/24", "rangeStart": "10.42.0.${i}0", "rangeEnd": "10.42.0.${i}9"}]]}}]}
CONF
  ip netns exec "$vnode" .venv/bin/pycni exec add --conf "$work/vx$i.conflist" --netns "$vpod" \
    --ifname eth0 --container-id "vpod$i-$tag" --cni-path "$work/bin" --cache-dir "$work/vxcache$i" >/dev/null
  echo "node $i: pod $vpod on $(ip -n "$vnode" -br link show type vxlan | awk '{print $1}')"
done
echo "== pod on node 1 -> pod on node 2 (10.42.0.20), across the overlay"
ip netns exec "$vpod1" ping -c 2 -W 2 10.42.0.20
for i in 1 2; do
  vnode="demo-vn$i-$tag" vpod="demo-vp$i-$tag"
  ip netns exec "$vnode" .venv/bin/pycni exec del --conf "$work/vx$i.conflist" --netns "$vpod" \
    --ifname eth0 --container-id "vpod$i-$tag" --cni-path "$work/bin" --cache-dir "$work/vxcache$i"
  ip netns exec "$vnode" .venv/bin/pycni exec gc --conf "$work/vx$i.conflist" --netns "$vpod" \
    --cni-path "$work/bin" --cache-dir "$work/vxcache$i"   # no pod left: removes vx42 and its bridge
  echo "node $i links after DEL+GC: $(ip -n "$vnode" -br link show | awk '{print $1}' | tr '\n' ' ')"
done

echo
echo "== multus: a pod with a cluster network and a secondary network, from a manifest directory"
bash scripts/demo_multus.sh

echo
echo "== SR-IOV on a fake NIC: the device plugin advertises VFs, a pod gets one through sriov"
bash scripts/demo_sriov.sh

echo
echo "== SR-IOV with DRA: the DRA driver publishes the VFs, a claim gets one, multus attaches it"
bash scripts/demo_dra.sh
echo "demo: ok"

"""Kernel networking shared by the plugins; every netlink request goes through here.

`netns` (entering namespaces, netlink sockets bound to one), `ip` (typed link, address and
route helpers), `routes` (default-route edits in a pod), `bridge_port` (hairpin, isolation,
VLANs of a bridge port), `fdb` (FDB entries), `vxlan_link` (VXLAN devices), `sriov_vf` and
`vf_state` (a VF's PF-side settings over rtnetlink), `iface` (applying an IPAM result),
`announce` (gratuitous ARP and unsolicited NA), `sysctl`, `lock` (per-resource flocks),
`firewall` (masquerade and spoof-check rules), `veth_attach` (a pod's veth on a bridge) and
`device/` (moving a node device into a pod and giving it back as recorded).
"""

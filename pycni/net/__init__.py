"""Kernel networking shared by the plugins: typed helpers, and every netlink request of pycni.

`netns` (entering namespaces, netlink sockets bound to one), `nlsock` (the synchronous rtnetlink
socket, the `Rtnl` handle every helper takes, the one place a kernel refusal is judged), `links`
(looking up and changing links), `newlink` (creating bridges and veths), `addresses`, `routes`
(including the default-route edits of a pod), `bridge_port` (hairpin, isolation, VLANs of a
bridge port), `fdb` (FDB entries), `vxlan_link` (VXLAN devices), `offload` (TX checksum offload),
`sriov_vf` and `vf_state` (a VF's PF-side settings over rtnetlink), `iface` (applying an IPAM
result), `announce` (gratuitous ARP and unsolicited NA), `sysctl`, `lock` (per-resource flocks),
and `firewall` (masquerade and spoof-check rules).

Only kernel helpers live here: a flow that combines links, IPAM and config (a pod's veth on a
bridge, a device lent to a pod) is an attachment flow, in `pycni.attach`. So nothing here runs a
plugin: `pycni.net` does not import `pycni.libcni` (a contract in pyproject.toml).
"""

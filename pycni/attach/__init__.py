"""Attachment flows shared by plugins: how a pod gets an interface, between the plugins and `net`.

A flow here combines kernel helpers (`pycni.net`), IPAM delegation (`pycni.libcni`) and config
into one of a plugin's steps: `veth` (a pod on a Linux bridge by a veth pair, with IPAM, port
settings and rules; bridge and vxlan) with its config keys in `veth_conf`, and `device/` (lending
a node device to a pod and giving it back as recorded; host-device and sriov). Nothing here
knows a plugin type, and no plugin imports another: what two plugins share comes here.
"""

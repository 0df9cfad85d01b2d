"""vxlan: an L2 overlay; pods on different nodes share one segment carried in UDP (RFC 7348).

`config` is pydantic only; `device` owns the node side (underlay, VXLAN device, bridge),
`flood` the head-end replication flood list, `offload` the TX checksum knob, and `plugin` the
verbs. The pod side is the bridge plugin's (`pycni.attach.veth`).
"""

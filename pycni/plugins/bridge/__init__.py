"""bridge: a veth pair per pod, its host end attached to a Linux bridge.

`config` is pydantic only (cheap to import); `plugin` ensures the bridge and hands the pod side
to `pycni.attach.veth`, which the vxlan plugin shares.
"""

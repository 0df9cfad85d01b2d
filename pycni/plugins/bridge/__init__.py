"""bridge: a veth pair per pod, its host end attached to a Linux bridge.

`config` is pydantic only (cheap to import); `plugin` ensures the bridge and hands the pod side
to `pycni.net.veth_attach`, which the vxlan plugin shares.
"""

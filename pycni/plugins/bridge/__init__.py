"""bridge: a veth pair per pod, its host end attached to a Linux bridge.

`config` is pydantic only (cheap to import); `plugin` does the kernel work; `pod` holds the
pod-side attachment that the vxlan plugin reuses; `firewall` the masquerade and spoof-check rules.
"""

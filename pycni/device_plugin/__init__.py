"""The SR-IOV / PCI NIC device plugin (`pycni device-plugin`), a per-node service.

Discovers devices through `pycni.hw.sysfs`, groups them into pools per the reference's config.json,
and serves the kubelet device-plugin API v1beta1 per pool. See docs/device-plugin.md.
"""

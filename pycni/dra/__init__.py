"""The DRA driver for SR-IOV VFs (`pycni dra-driver`), a per-node service.

Publishes the devices of the device plugin's `config.json` pools as `resource.k8s.io/v1`
ResourceSlices, serves kubelet's DRA plugin API (prepare and unprepare claims, through CDI specs)
and device health stream, and registers through the plugin watcher. See docs/dra.md.
"""

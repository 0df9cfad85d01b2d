"""The resource pools of sriov-network-device-plugin's `config.json`, shared by the device plugin
and the DRA driver: the config model (`config`, with the `pfNames#0-3` syntax in `ranges`), which
discovered devices join which pool and whether they are healthy (`membership`), and what a
container gets for a device (`container`: env names, device nodes, the `_INFO` entry).
"""

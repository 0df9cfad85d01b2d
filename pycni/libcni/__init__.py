"""The runtime side of the spec: what calls plugins rather than what a plugin is.

`delegate` (calling a plugin by type: in-process for ours, exec for others), `conflist`
(network config lists and the per-plugin config derived from them), `netlist` (running a
network list: prevResult chaining, DEL in reverse, the cache), `cache` (libcni's result cache
format) and `tool` (`pycni exec`, a cnitool). Imports `pycni.cni` only.
"""

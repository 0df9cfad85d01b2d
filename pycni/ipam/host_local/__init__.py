"""host-local IPAM: addresses from configured ranges, reserved in the reference's on-disk store.

`config` (the model), `range_set` (range arithmetic), `allocator` (choosing an address),
`store` (the storage contract), `disk`/`index`/`store_files` (the on-disk store),
`resolv` (resolv.conf), `plugin` (the verbs). See docs/host-local.md for the design.
"""

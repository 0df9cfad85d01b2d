"""Hardware facts: `sysfs` (PCI, SR-IOV and netdev attributes; standard library only), `sriov`
(a VF as sysfs describes it: PF, index, driver, netdev), `vf_control` (where a VF's PF-side
settings are read and set: netlink, or a state file on nodes without SR-IOV hardware),
`devinfo` (NPWG device-info files, one reader and writer for every producer), `discovery` (the
PCI functions a node could hand to pods), and how node services watch them change: `linkwatch` (the
link table and link events through netlink), `inotify` and `events` (every source on one selector).
"""

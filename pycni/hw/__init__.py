"""Hardware facts: `sysfs` (PCI, SR-IOV and netdev attributes; standard library only) and
`devinfo` (the NPWG device-info file, one reader and writer for every producer).
"""

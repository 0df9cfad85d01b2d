"""host-device: hand an existing node device to a pod, and give it back as it was.

`config` is pydantic only (cheap to import); `selection` finds the device (netlink and sysfs);
`state` keeps what must be restored, one file per attachment; `move` moves a device in and out
through a temporary netns; `release` finds a device to give back (pod, orphan, half-done);
`devinfo` writes the NPWG device-info file; `plugin` holds the verbs.
"""

"""host-device: hand an existing node device to a pod, and give it back as it was.

`config` is pydantic only (cheap to import); `selection` finds the device (netlink and sysfs);
`plugin` holds the verbs. Moving the device and its restore record are `pycni.attach.device`'s;
the NPWG device-info file is `pycni.hw.devinfo`'s.
"""

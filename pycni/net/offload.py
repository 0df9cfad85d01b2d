"""TX checksum offload of a device: `ethtool -K <dev> tx-checksum-ip-generic off`, over the ioctl.

For the vxlan plugin's `disableTxChecksumOffload`. Kernels before 5.7 combined with iptables
rules mangling VXLAN UDP packets sent them with a bad checksum when the NIC driver offloaded it,
and connections stalled for ~63 s (flannel#1279, calico#3145). Computing the checksum in
software avoids it. The ioctl acts on the calling thread's netns, which is the node's since the
plugin runs there.
"""

from __future__ import annotations

from pycni.cni.errors import InternalError

FEATURE = "tx-checksum-ip-generic"


def tx_checksum_offload(ifname: str) -> bool:
    """Whether the device computes TX checksums in hardware (or pretends to, as VXLAN does)."""
    from pyroute2.ethtool import Ethtool

    ethtool = Ethtool()
    try:
        feature = ethtool.get_features(ifname).features.get(FEATURE)
        return bool(feature and feature.enable)
    finally:
        ethtool.close()


def disable_tx_checksum_offload(ifname: str) -> None:
    """Turn the feature off; a device that cannot is an error, not a silent no-op."""
    from pyroute2.ethtool import Ethtool

    ethtool = Ethtool()
    try:
        features = ethtool.get_features(ifname)
        feature = features.features.get(FEATURE)
        if feature is None or not feature.enable:
            return
        feature.enable = False
        ethtool.set_features(ifname, features)
    except Exception as exc:
        raise InternalError(f"failed to turn off {FEATURE} on {ifname}: {exc}") from exc
    finally:
        ethtool.close()
    if tx_checksum_offload(ifname):
        raise InternalError(f"{ifname} refused to turn off {FEATURE}")

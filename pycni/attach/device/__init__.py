"""Lending a node device to a pod: `record` (what must be restored, one file per attachment),
`move` (in and out through a temporary netns) and `giveback` (finding the device to return:
in the pod, as an orphan back in the node, or half-returned). host-device and sriov use it.
"""

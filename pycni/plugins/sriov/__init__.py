"""sriov: an SR-IOV virtual function handed to a pod (kernel netdev or userspace/VFIO)."""

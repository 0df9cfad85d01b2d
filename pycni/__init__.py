"""pycni: CNI plugins and an SR-IOV device plugin for Kubernetes nodes."""

__version__ = "0.1.0"

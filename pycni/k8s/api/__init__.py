"""Generated gRPC stubs for the kubelet APIs (see protogen.py); do not edit by hand."""

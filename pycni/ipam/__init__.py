"""IPAM plugin types; each is a package of its own (`host_local`)."""

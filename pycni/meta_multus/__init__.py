"""multus: the meta-plugin that attaches a pod to its cluster network and its extra networks."""

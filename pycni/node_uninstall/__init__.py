"""`pycni uninstall --node`: hand a node's running pods over to the reference plugins (rolling back).

Most of what pycni keeps on a node is already in the reference's own form (masquerade and spoof
checks, sriov-cni's caches, multus-cni's scratch caches); this converts what is not (the state
earlier pycni versions wrote, masquerade in nftables for a reference older than v1.5) and
removes our own records, so the reference's DEL of every pod finishes the job and leaves
nothing of ours behind. docs/kubernetes.md, "Rolling back", has the procedure.
"""

"""`pycni node-install`: what the CNI DaemonSet's installer container does on each node.

It puts the executables into the host's CNI bin directory (atomically: a runtime exec'ing one
never sees half a file), writes `00-multus.conflist` in front of the node's primary network
(`primary`), writes a kubeconfig for the meta-plugin from the pod's service-account token and
refreshes it when the token rotates (`kubeconfig`), watches both and regenerates on change, and
on exit removes what it wrote when asked (`run`). Flags are named like the multus thin
entrypoint's where they mean the same (`cli`).
"""

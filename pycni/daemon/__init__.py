"""The node daemon: every plugin type imported once, CNI requests served by warm workers.

`pycni daemon` runs a supervisor (`supervisor.py`, one selector loop) that owns the root-only
Unix socket (`listener.py`); its caller intake (`intake.py`) checks each caller's credentials and
queues requests, its worker pool (`pool.py`) hands each one to an idle pre-forked worker process
(`worker.py`), which runs it with the same runner an executable uses (`pycni.cni.skel.run`)
inside the caller's namespaces (`namespaces.py`).
The executables stay the interface: `pycni.daemon.launcher` forwards to the daemon and runs the
plugin itself whenever the daemon does not take the request. docs/daemon.md has the design.
"""

"""`pycni daemon` with the probe type registered: `python -m tests.daemon.serve_probe ARGS`."""

import sys

from pycni.daemon.cli import main
from pycni.registry import PLUGINS
from tests.daemon.probe_plugin import PROBE

PLUGINS[PROBE.type] = PROBE
sys.exit(main(sys.argv[1:]))

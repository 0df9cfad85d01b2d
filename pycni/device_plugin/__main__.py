"""`python -m pycni.device_plugin ...`, the same as `pycni device-plugin ...`."""

import sys

from pycni.device_plugin.cli import main

sys.exit(main(sys.argv[1:]))

"""`python -m pycni.dra ...`, the same as `pycni dra-driver ...`."""

import sys

from pycni.dra.cli import main

sys.exit(main(sys.argv[1:]))

import sys

from pycni.cni.cli import main

sys.exit(main())

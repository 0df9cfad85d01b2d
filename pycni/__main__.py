import sys

from pycni.cli import main

sys.exit(main())

from pycni.cni.cli import main
import sys
sys.exit(main())

"""`python -m tests.helpers.soak`: the soak's command line (`cli`)."""

import sys

from tests.helpers.soak.cli import main

sys.exit(main())

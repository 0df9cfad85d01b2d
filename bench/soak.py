"""Soak: many randomized pod lifecycles at once, with faults, and the invariants checked after.

Run as root: `.venv/bin/python bench/soak.py --lifecycles 5000 --concurrency 16 --faults [--seed S] [--json]`.
The harness is `tests/helpers/soak/` (shared with the short soak in `tests/soak`); this is its
command line. docs/reliability.md describes what it checks and how to replay a seed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.soak.cli import main

if __name__ == "__main__":
    sys.exit(main())

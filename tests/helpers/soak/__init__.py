"""The soak: many randomized pod lifecycles at once, with faults, and the invariants checked after.

`run` (the harness), `node` (the throw-away node it runs on), `plan` (the seeded schedule of
lifecycles and faults), `checks` (what is looked at, during and after), `cli` (the command line,
also `bench/soak.py`). `tests/soak` runs a short soak; docs/reliability.md has the long runs.
"""

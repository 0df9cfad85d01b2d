"""Where a request's time goes: seconds per phase, added up by the code that runs it.

The node daemon's worker resets the tally before a request and reads it after, so
`pycni daemon --status` can show, for each recent request, how long it spent in the kernel
(netlink requests, counted by `pycni.net.nlsock`), in IPAM (`pycni.libcni.delegate`, when a
plugin calls the type its `ipam` section names) and in other delegates (multus's). An
executable running its request itself never reads it; the cost is two clock reads per span.

Phases are exclusive: time in a span nested inside another is not counted again in the outer
one (IPAM's own netlink requests count as kernel time, not IPAM time), so the phases of one
request add up to at most its duration, and what no span covers is the plugin's own.
Standard library only: every layer may use it.
"""

from __future__ import annotations

from time import perf_counter

KERNEL = "kernel"
IPAM = "ipam"
DELEGATE = "delegate"

#: Seconds per phase since the last `reset`, exclusive of nested spans.
_spent: dict[str, float] = {}
#: For each span still open, innermost last: the seconds spent in spans nested inside it.
_nested: list[float] = []


def reset() -> None:
    """Start a new request's tally (also forgets spans a failure left open)."""
    _spent.clear()
    _nested.clear()


def spent() -> dict[str, float]:
    """Seconds per phase since `reset`."""
    return dict(_spent)


def start() -> float:
    """Open a span; pass what it returns to `stop` (in a `finally`)."""
    _nested.append(0.0)
    return perf_counter()


def stop(phase: str, started: float) -> None:
    """Close the innermost span, adding its own time (less nested spans') to `phase`."""
    elapsed = perf_counter() - started
    inner = _nested.pop() if _nested else 0.0
    _spent[phase] = _spent.get(phase, 0.0) + elapsed - inner
    if _nested:
        _nested[-1] += elapsed

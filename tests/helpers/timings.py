"""Timings the end-to-end tests take of a scenario, printed beside the reference's after the run.

Samples go to one file per test run, named in an environment variable the controlling pytest
sets before its xdist workers start (they inherit it); its terminal summary prints the table
and removes the file. The tests assert no timing: the speed goals are measured in bench/.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
from pathlib import Path

ENV = "PYCNI_TEST_TIMINGS"


class Timings:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_this_run(cls) -> Timings:
        return cls(Path(os.environ.get(ENV) or Path(tempfile.gettempdir()) / f"pycni-timings-{os.getpid()}"))

    @staticmethod
    def start_run() -> None:
        """In the controlling process, before workers start: name this run's file."""
        os.environ.setdefault(ENV, str(Path(tempfile.mkdtemp(prefix="pycni-timings")) / "timings.jsonl"))

    def add(self, scenario: str, plugins: str, seconds: list[float]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            out.write(json.dumps([scenario, plugins, seconds]) + "\n")

    def samples(self) -> dict[tuple[str, str], list[float]]:
        found: dict[tuple[str, str], list[float]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                scenario, plugins, seconds = json.loads(line)
                found.setdefault((scenario, plugins), []).extend(seconds)
        return found

    def table(self) -> list[str]:
        samples = self.samples()
        lines = [f"{'scenario':<44} {'pycni median':>13} {'reference median':>17} {'ratio':>6}"]
        for scenario in sorted({s for s, _ in samples}):
            ours, ref = samples.get((scenario, "pycni")), samples.get((scenario, "reference"))
            med_ours = statistics.median(ours) if ours else None
            med_ref = statistics.median(ref) if ref else None
            ratio = f"{med_ours / med_ref:.2f}" if med_ours and med_ref else "-"
            lines.append(f"{scenario:<44} {_ms(med_ours):>13} {_ms(med_ref):>17} {ratio:>6}")
        return lines

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        if self.path.parent.name.startswith("pycni-timings"):
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()


def _ms(value: float | None) -> str:
    return f"{value * 1000:.0f} ms" if value is not None else "-"

"""Shared budget and checks for the property-based fuzz tests (hypothesis).

Every fuzz test takes its example budget from `PYCNI_FUZZ_EXAMPLES`: a few hundred per parser on
every CI run, 10,000 and more from `bench/fuzz.py`. Each test is marked `fuzz`, so
`pytest -m fuzz` runs exactly the fuzz suite. A failure prints the example and a
`@reproduce_failure` blob; rerunning the test replays it.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings

#: Examples per fuzz test; CI's default keeps the whole fuzz suite to about a minute.
FUZZ_EXAMPLES = int(os.environ.get("PYCNI_FUZZ_EXAMPLES", "200"))

#: Spec error keys; an error object has no others.
ERROR_KEYS = frozenset({"cniVersion", "code", "msg", "details"})


def fuzz_settings(**overrides: Any) -> settings:
    """The settings every fuzz test uses: the shared budget, no deadline, no example database."""
    base: dict[str, Any] = {
        "max_examples": FUZZ_EXAMPLES,
        "deadline": None,
        "database": None,
        "print_blob": True,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    }
    base.update(overrides)
    return settings(**base)


@dataclass
class Answer:
    """What one in-process plugin call printed and returned, and what it logged as unexpected."""

    code: int
    stdout: str
    unexpected: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def unexpected_failures() -> Iterator[list[str]]:
    """Collect log records that carry a traceback or report an unexpected failure."""
    handler = _Collect()
    root = logging.getLogger("pycni")
    root.addHandler(handler)
    found: list[str] = []
    try:
        yield found
    finally:
        root.removeHandler(handler)
        for record in handler.records:
            if record.exc_info or "unexpected" in record.getMessage():
                found.append(f"{record.name}: {record.getMessage()}")


def call_inprocess(plugin_type: str, env: Mapping[str, str], stdin: bytes) -> Answer:
    """Run one request through the registry's runner in this process, as a daemon worker does."""
    from pycni import registry

    out = io.StringIO()
    with unexpected_failures() as unexpected:
        code = registry.run(plugin_type, env, io.BytesIO(stdin), out)
    return Answer(code, out.getvalue(), unexpected)


def assert_spec_answer(answer: Answer, *, allow_internal: bool = False) -> None:
    """A valid result (or nothing) with exit 0, or one spec error object with a non-zero exit.

    Hostile input is never an internal error (code 999) unless the caller allows it, and never
    leaves a traceback in the log.
    """
    assert not answer.unexpected, f"unexpected failure logged: {answer.unexpected}"
    lines = [line for line in answer.stdout.splitlines() if line.strip()]
    if answer.code == 0:
        assert len(lines) <= 1, f"more than one JSON document on stdout: {answer.stdout!r}"
        if lines:
            assert isinstance(json.loads(lines[0]), dict)
        return
    assert len(lines) == 1, f"an error must be one JSON object on stdout: {answer.stdout!r}"
    err = json.loads(lines[0])
    assert isinstance(err, dict) and set(err) <= ERROR_KEYS, err
    assert isinstance(err.get("code"), int) and err["code"] > 0, err
    assert isinstance(err.get("msg"), str) and err["msg"], err
    if not allow_internal:
        assert err["code"] != 999, f"hostile input answered as an internal error: {err}"

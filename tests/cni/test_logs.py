"""One call's own logging (`call_logging`): multus's and sriov's `logLevel`/`logFile` alike."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycni.cni.logs import FORMAT, call_logging

log = logging.getLogger("pycni.tests.logs")


@pytest.fixture
def process_log() -> Iterator[io.StringIO]:
    """A process handler on the root logger at WARNING, as `setup_logging` installs one."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.WARNING)
    root, pycni = logging.getLogger(), logging.getLogger("pycni")
    before = (root.level, pycni.level)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(before[0])
        pycni.setLevel(before[1])


def test_a_log_file_gets_the_call_at_its_level_and_the_process_log_keeps_its_own(
    process_log: io.StringIO, tmp_path: Path
) -> None:
    path = tmp_path / "logs" / "call.log"  # its directory is made
    with call_logging(logging.DEBUG, str(path)):
        log.debug("a debug line")
        log.warning("a warning")
    log.debug("after the call")
    text = path.read_text()
    assert "DEBUG pycni.tests.logs" in text and "a debug line" in text and "a warning" in text
    assert "after the call" not in text
    assert "a debug line" not in process_log.getvalue() and "a warning" in process_log.getvalue()


def test_a_level_alone_opens_the_process_log_for_the_call_only(process_log: io.StringIO) -> None:
    with call_logging(logging.INFO):
        log.info("an info line")
        log.debug("a debug line")
    log.info("after the call")
    text = process_log.getvalue()
    assert text.count("an info line") == 1 and "a debug line" not in text and "after the call" not in text
    ours = [h for h in logging.getLogger().handlers if getattr(h, "stream", None) is process_log]
    assert [h.level for h in ours] == [logging.WARNING]  # the process's level is back


def test_a_quieter_level_never_narrows_the_process_log(process_log: io.StringIO, tmp_path: Path) -> None:
    with call_logging(logging.ERROR):
        log.warning("still a warning")
    path = tmp_path / "call.log"
    with call_logging(logging.ERROR, str(path)):
        log.warning("not for the file")
    assert process_log.getvalue().count("still a warning") == 1
    assert "not for the file" in process_log.getvalue() and "not for the file" not in path.read_text()


def test_a_log_file_that_cannot_be_opened_costs_a_warning(process_log: io.StringIO, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with call_logging(logging.DEBUG, str(blocker / "call.log")):
        log.warning("the call goes on")
    assert "cannot open logFile" in process_log.getvalue() and "the call goes on" in process_log.getvalue()

"""Fuzzing the daemon's wire protocol as a root client: whatever arrives, the daemon stays well.

Properties, checked on every example against one daemon for the module:
- every connection is answered or closed within a deadline, and the daemon keeps running;
- only a well-formed request (magic, kind, lengths within the limits and exactly what was
  sent, a type the daemon serves, a network and a mount namespace attached) is ever taken
  (READY), so nothing malformed runs; what runs answers with a spec answer;
- `--status` answers, and its counters match what the callers were told: every refusal, every
  request run and every request abandoned is counted once, and no worker died.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycni.daemon.protocol import (
    DIED,
    DONE,
    GO,
    KIND_CNI,
    KIND_STATUS,
    MAGIC,
    MAX_HEADER,
    MAX_STDIN,
    QUEUED,
    READY,
    REFUSED,
)
from pycni.daemon.wire import parse_header
from tests.daemon.process import DaemonProcess, start_daemon
from tests.helpers.fuzz import Answer, assert_spec_answer, fuzz_settings
from tests.helpers.poll import wait_until

#: Every connection is answered or closed within this long (a stalled caller is dropped after 2 s).
DEADLINE = 10.0
NETNS = "/run/netns/none"


@dataclass
class Tally:
    """What one caller was told, to compare with how the daemon's counters moved meanwhile."""

    refused: int = 0
    abandoned: int = 0
    requests: int = 0
    errors: int = 0

    @classmethod
    def of(cls, status: dict[str, Any]) -> Tally:
        return cls(sum(status["refused"].values()), status["abandoned"], status["requests"], status["errors"])

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.refused + other.refused,
            self.abandoned + other.abandoned,
            self.requests + other.requests,
            self.errors + other.errors,
        )


@dataclass
class Served:
    daemon: DaemonProcess
    run_dir: Path


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One probe daemon for the whole module; the fuzz examples share it, as callers on a node do."""
    if os.geteuid() != 0:
        pytest.skip("the daemon serves root only")
    base = Path(tempfile.mkdtemp(prefix="pcf"))
    daemon = start_daemon(base / "s", "--workers", "2", "--request-timeout", "10")
    try:
        yield Served(daemon, base / "run")
    finally:
        daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


# frames


@dataclass(frozen=True)
class Frame:
    data: bytes
    fds: str  # "ns", "none", "swapped", "devnull", "pod", "four"
    half_close: bool
    well_formed: bool


#: How a frame departs from a well-formed request; "none" keeps it well-formed.
MUTATIONS = (
    ["none"] * 6
    + ["magic", "kind", "status", "type", "short", "trailing", "huge_header", "huge_stdin", "max"]
    + ["no_fds", "swapped", "devnull", "pod_fd", "four"]
)
FDS = {"no_fds": "none", "swapped": "swapped", "devnull": "devnull", "pod_fd": "pod", "four": "four"}
LENGTHS = ("short", "trailing", "huge_header", "huge_stdin", "max")

ENV_KEYS = st.sampled_from(
    [
        b"CNI_COMMAND",
        b"CNI_CONTAINERID",
        b"CNI_NETNS",
        b"CNI_IFNAME",
        b"CNI_PATH",
        b"CNI_ARGS",
        b"PATH",
        b"LD_PRELOAD",
    ]
)
ENV_VALUES = st.one_of(
    st.sampled_from(
        [b"ADD", b"DEL", b"CHECK", b"VERSION", b"STATUS", b"GC", NETNS.encode(), b"eth0", b"ctr-f", b"/"]
    ),
    st.binary(max_size=40),  # NUL bytes here split the pair; non-UTF-8 bytes decode as escapes
)
RANDOM_PAIRS = st.lists(
    st.builds(lambda k, v: k + b"=" + v, ENV_KEYS, ENV_VALUES) | st.binary(max_size=20), max_size=8
)
#: What a runtime sends: the request runs all the way through the plugin.
VALID_PAIRS = st.sampled_from([b"ADD", b"DEL", b"CHECK", b"VERSION"]).map(
    lambda command: [
        b"CNI_COMMAND=" + command,
        b"CNI_CONTAINERID=ctr-f",
        b"CNI_NETNS=" + NETNS.encode(),
        b"CNI_IFNAME=eth0",
        b"CNI_PATH=/nonexistent",
    ]
)
#: The header's first NUL-separated field is the type ("probe\0x" is "probe" and a pair without "=").
UNKNOWN_TYPES = st.one_of(
    st.sampled_from([b"", b"nosuch", b"../probe", b"probe\xff", b"PROBE", b"\0probe"]),
    st.binary(min_size=1, max_size=12).filter(lambda t: t.split(b"\0")[0] != b"probe"),
)
CONF = {"cniVersion": "1.0.0", "name": "fuzz-net", "type": "probe"}
STDIN = st.one_of(
    st.just(json.dumps(CONF).encode()),
    st.fixed_dictionaries(
        {"name": st.integers() | st.text(max_size=5), "cniVersion": st.none() | st.integers()}
    ).map(
        lambda d: json.dumps({**CONF, **d}).encode()  # wrong field types
    ),
    st.binary(max_size=64),  # random and non-UTF-8 bytes
)


@st.composite
def frames(draw: st.DrawFn, run_dir: Path) -> Frame:
    """A request frame with up to two things wrong with it, or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        # (not a beginning of MAGIC: a caller that stops there is only dropped after 2 s, tested below)
        data = draw(
            st.binary(min_size=1, max_size=200).filter(lambda b: not MAGIC.startswith(b[: len(MAGIC)]))
        )
        return Frame(data, "none", draw(st.booleans()), well_formed=False)
    wrong = {m for m in draw(st.lists(st.sampled_from(MUTATIONS), max_size=2)) if m != "none"}
    plugin_type = draw(UNKNOWN_TYPES) if "type" in wrong else b"probe"
    pairs = draw(st.one_of(RANDOM_PAIRS, VALID_PAIRS))
    header = b"\0".join([plugin_type, b"PYCNI_RUN_DIR=" + bytes(run_dir), *pairs])
    stdin = draw(STDIN)
    header_len, stdin_len = len(header), len(stdin)
    body = header + stdin
    if "huge_header" in wrong:
        header_len = MAX_HEADER + 1 + len(header)
    if "huge_stdin" in wrong:
        stdin_len = MAX_STDIN + 1
    if "max" in wrong:
        header_len = stdin_len = 0xFFFFFFFF
    if "short" in wrong:  # the body is cut short: the caller sends less than it declared
        body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
    if "trailing" in wrong:  # more than it declared
        body += draw(st.binary(min_size=1, max_size=16))
    magic = draw(st.sampled_from([b"PCNJ", b"pcni", b"PCN\0"])) if "magic" in wrong else MAGIC
    kind = KIND_STATUS if "status" in wrong else KIND_CNI
    if "kind" in wrong:
        kind = draw(st.sampled_from([b"Z", b"\0", b"c", b"R", b"G"]))
    fds = next((FDS[m] for m in sorted(wrong) if m in FDS), "ns")
    data = magic + kind + header_len.to_bytes(4, "big") + stdin_len.to_bytes(4, "big") + body
    # a body cut short is only noticed once the caller stops sending: it half-closes
    half_close = "short" in wrong or draw(st.sampled_from([False, False, False, True]))
    # the protocol's rules, on the bytes as sent (two mutations may cancel out)
    well_formed = (
        magic == MAGIC
        and kind == KIND_CNI
        and header_len <= MAX_HEADER
        and stdin_len <= MAX_STDIN
        and len(body) == header_len + stdin_len
        and body[:header_len].split(b"\0")[0] == b"probe"
        # a third fd is CNI_NETNS as the caller opened it: meaningless without CNI_NETNS
        and (fds == "ns" or (fds == "pod" and bool(parse_header(body[:header_len])[1].get("CNI_NETNS"))))
    )
    return Frame(data, fds, half_close, well_formed)


# the client


def attached(fds: str, stack: ExitStack) -> list[int]:
    def opened(path: str) -> int:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        stack.callback(os.close, fd)
        return fd

    if fds == "none":
        return []
    net, mnt = opened("/proc/thread-self/ns/net"), opened("/proc/thread-self/ns/mnt")
    return {
        "ns": [net, mnt],
        "swapped": [mnt, net],
        "devnull": [opened("/dev/null"), opened("/dev/null")],
        "pod": [net, mnt, net],
        "four": [net, mnt, net, mnt],
    }[fds]


class Conversation:
    """One caller's exchange with the daemon, every read bounded by the deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = time.monotonic() + DEADLINE

    def read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            left = self.deadline - time.monotonic()
            assert left > 0, f"the daemon neither answered nor closed within {DEADLINE}s"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(size - len(data))
            except TimeoutError:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return data
            data += chunk
        return data

    def number(self) -> int:
        raw = self.read(4)
        assert len(raw) == 4, f"an answer cut short: {raw!r}"
        return int.from_bytes(raw, "big")


def talk(served: Served, f: Frame, tally: Tally) -> str:
    """Send one frame, follow the exchange to its end; what the caller was told."""
    with ExitStack() as stack:
        sock = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        sock.settimeout(DEADLINE)
        sock.connect(str(served.daemon.socket))
        fds = attached(f.fds, stack)
        try:
            sock.sendmsg(
                [f.data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(memoryview_of(fds)))] if fds else []
            )
            if f.half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we finished sending: the answer is still there to read
        return follow(Conversation(sock), f, tally)


def memoryview_of(fds: list[int]) -> bytes:
    import array

    return array.array("i", fds).tobytes()


def follow(conv: Conversation, f: Frame, tally: Tally) -> str:
    first = conv.read(1)
    while first == QUEUED:
        first = conv.read(1)
    if first == b"":
        return "closed"
    if first == REFUSED:
        reason = conv.read(conv.number())
        assert reason, "a refusal without a reason"
        assert not f.well_formed, f"a well-formed request was refused: {reason!r}"
        tally.refused += 1
        return "refused"
    if first == DONE:  # a status request, answered by the supervisor
        assert f.data.startswith(MAGIC + KIND_STATUS), f"a status answer to {f!r}"
        code, out = conv.number(), conv.read(conv.number())
        assert code == 0 and isinstance(json.loads(out)["requests"], int)
        return "status"
    assert first == READY, f"unexpected answer {first!r}"
    assert f.well_formed, f"a malformed request was taken: {f!r}"
    conv.number()
    if f.half_close:
        tally.abandoned += 1
        assert conv.read(1) == b"", "an abandoned request was answered"
        return "abandoned"
    conv.sock.sendall(GO)
    kind = conv.read(1)
    assert kind != DIED, "a worker died running a request"
    assert kind == DONE, f"no answer after GO: {kind!r}"
    code, out = conv.number(), conv.read(conv.number())
    tally.requests += 1
    tally.errors += code != 0
    assert_spec_answer(Answer(code, out.decode()))
    return "done"


def assert_healthy(served: Served, before: dict[str, Any], tally: Tally) -> None:
    """The daemon runs, answers --status, and counted exactly what the caller was told."""
    assert served.daemon.proc.poll() is None, "the daemon died"
    expected = Tally.of(before) + tally

    def consistent() -> dict[str, Any] | None:
        status = served.daemon.status()  # a worker reports to the supervisor after answering
        return status if Tally.of(status) == expected and status["busy"] == 0 else None

    try:
        status = wait_until(consistent, timeout=DEADLINE, what="the daemon's counters")
    except AssertionError:
        raise AssertionError(f"counters {served.daemon.status()} do not add up to {expected}") from None
    assert status is not None
    assert status["worker_restarts"] == 0 and status["workers"] == 2 and status["queued"] == 0


@pytest.mark.fuzz
@fuzz_settings()
@given(data=st.data())
def test_malformed_frames_are_refused_or_dropped_and_the_daemon_stays_well(
    served: Served, data: st.DataObject
) -> None:
    f = data.draw(frames(served.run_dir))
    before, tally = served.daemon.status(), Tally()
    talk(served, f, tally)
    assert_healthy(served, before, tally)


@pytest.mark.parametrize("head", [b"", MAGIC[:3], MAGIC + KIND_STATUS, MAGIC + KIND_CNI + bytes(4)])
def test_a_caller_that_stops_sending_is_dropped_without_holding_up_others(
    served: Served, head: bytes
) -> None:
    """A partial frame left open is closed within the deadline; meanwhile --status answers at once."""
    before, tally = served.daemon.status(), Tally()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(served.daemon.socket))
        sock.sendall(head)
        started = time.monotonic()
        served.daemon.status()  # the supervisor's loop does not wait for the stalled caller
        assert time.monotonic() - started < 1.5
        conv = Conversation(sock)
        first = conv.read(1)
        if first == REFUSED:  # a worker took it and gave up on the rest of the frame
            assert conv.read(conv.number())
            tally.refused += 1
        else:
            assert first == b"", f"unexpected answer {first!r}"
    assert_healthy(served, before, tally)

"""Advisory file locks with a deadline, and the one lock every ADD, CHECK and DEL runs under.

`fcntl.flock` is released by the kernel when the process dies, so a crashed plugin never
leaves a stale lock; it is per open file description, so threads in one daemon process
exclude each other too. A lock not obtained in time is "try again later" (code 11).

Lock files named after something that comes and goes (a pod, an attachment) are removed by
their holder on release, so the lock directory does not grow with every pod the node has
seen. Removal is safe with the unlink-then-recheck pattern: the holder unlinks the file
before it unlocks, and whoever obtains a lock checks that the path still names the file it
locked, starting over if not. Files that other programs lock too (host-local's, which the
reference locks with go-filemutex) are never removed.

The attachment lock (`attachment`) serialises the requests of one attachment (network,
container, interface), in whatever process they run: a DEL never runs while an ADD of the same
attachment is still at work (a runtime may give up on an ADD whose plugin then goes on, and
send the DEL at once), and concurrent DELs run one after the other. It is taken once per
request, by the runner around the verb; in-process delegates do not take it again, and our
own executables exec'd as delegates of the request that holds it are told so through the
environment (`HELD_ENV`), so they never wait for their own caller.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pycni.cni import env_names
from pycni.cni.errors import TryAgainLater
from pycni.cni.files import make_private_dirs
from pycni.cni.runtime import OWN_NETNS, Command, RuntimeArgs

DEFAULT_TIMEOUT = 30.0
#: How long a request waits for another request of its attachment to finish.
ATTACHMENT_TIMEOUT = DEFAULT_TIMEOUT
#: Attachment locks held by the request that exec'd us (lock file names, comma separated).
HELD_ENV = env_names.ATTACHMENT_LOCKS
#: Verbs that act on one attachment, and so run under its lock.
ATTACHMENT_COMMANDS = (Command.ADD, Command.CHECK, Command.DEL)


def nap(delay: float) -> None:
    """The pause between two attempts at a lock (its own name, so tests can see a wait)."""
    time.sleep(delay)


@contextmanager
def flock(
    path: Path, timeout: float = DEFAULT_TIMEOUT, what: str = "", remove: bool = False
) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created 0600) for the block.

    `remove`: unlink the file on release (every user of `path` must pass the same).
    """
    make_private_dirs(path.parent)
    deadline = time.monotonic() + timeout
    fd = _acquire(path, deadline, timeout, what)
    try:
        yield
    finally:
        if remove:
            path.unlink(missing_ok=True)  # while still holding it: see the module docstring
        os.close(fd)


def _acquire(path: Path, deadline: float, timeout: float, what: str) -> int:
    """An fd of the file `path` names, flocked; waits until `deadline`."""
    delay = 0.0002
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise TryAgainLater(
                        f"timed out after {timeout:.0f}s waiting for the lock on {what or path}"
                    )
                nap(delay)
                delay = min(delay * 2, 0.005)  # short naps: waits here are short, contenders many
            if _still_named(path, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder we waited for removed it: lock whatever the path names now


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False
    return True


def _still_named(path: Path, fd: int) -> bool:
    """Whether `path` still names the file `fd` has open (a remover may have unlinked it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    locked = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (locked.st_dev, locked.st_ino)


def lock_path(run_dir: Path, kind: str, name: str) -> Path:
    """The lock file for one named thing of the calling thread's netns, e.g. ("bridge", "cni0").

    Keyed by the netns too, so two simulated nodes sharing one filesystem never share a lock.
    """
    digest = hashlib.sha256(name.encode(errors="surrogateescape")).hexdigest()[:16]
    return run_dir / "locks" / f"{kind}-{os.stat(OWN_NETNS).st_ino}-{digest}.lock"


@contextmanager
def attachment(
    run_dir: Path, rt: RuntimeArgs, conf: dict[str, Any], timeout: float | None = None
) -> Iterator[RuntimeArgs]:
    """Hold the lock of the request's attachment; the request's arguments to run it with.

    Those arguments tell exec'd delegates which attachment locks this request holds. Verbs
    without an attachment (STATUS, GC) run without a lock, with `rt` unchanged.
    """
    if rt.command not in ATTACHMENT_COMMANDS:
        yield rt
        return
    network = str(conf.get("name"))
    path = lock_path(run_dir, "attachment", f"{network}\0{rt.container_id}\0{rt.ifname}")
    held = [name for name in rt.env.get(HELD_ENV, "").split(",") if name]
    if path.name in held:  # our caller holds it and waits for us
        yield rt
        return
    env = {**rt.env, HELD_ENV: ",".join([*held, path.name])}
    what = f"attachment {network}/{rt.container_id}/{rt.ifname}"
    with flock(path, ATTACHMENT_TIMEOUT if timeout is None else timeout, what=what, remove=True):
        yield dataclasses.replace(rt, env=env)

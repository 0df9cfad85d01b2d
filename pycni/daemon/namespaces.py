"""Run a request in the caller's network and mount namespaces, then come back.

An exec'd plugin inherits its caller's namespaces; a daemon worker must recreate that, or a
caller running in another netns (`ip netns exec`, a test's "node") would have its request
applied to the daemon's. The launcher sends fds of its own namespaces with the request.

The network namespace is always the caller's. The mount namespace is the caller's only if
this daemon's code is visible there at the same paths (same device and inode): then /sys,
/proc/sys and every path look as they do to the caller, and lazy imports still work. A
daemon in a container image (a DaemonSet) does not see its code there and stays in its own
mount namespace; it needs the runtime's paths mounted (docs/daemon.md).

Workers are single-threaded processes: `setns(CLONE_NEWNS)` refuses threaded callers, and a
worker that cannot return home exits rather than serve the next caller in the wrong place.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from pycni.net.netns import CLONE_NEWNET, CLONE_NEWNS, setns

T = TypeVar("T")


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _code_dirs() -> list[str]:
    """Where the daemon's code lives: the stdlib, pycni and its imported dependencies."""
    dirs = [os.path.dirname(os.__file__)]
    for name in ("pycni", "pyroute2", "pydantic"):
        module = sys.modules.get(name)
        if module is not None and module.__file__:
            dirs.append(os.path.dirname(module.__file__))
    return dirs


@dataclass
class Home:
    """The worker's own namespaces, held open so it can always return to them."""

    net_fd: int
    mnt_fd: int
    net: tuple[int, int]
    mnt: tuple[int, int]
    code: list[tuple[str, tuple[int, int]]]
    #: Per caller mount namespace: does it show our code at the same paths?
    mnt_usable: dict[tuple[int, int], bool] = field(default_factory=dict)

    @classmethod
    def current(cls) -> Home:
        net_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        mnt_fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        code = [(d, _identity(os.stat(d))) for d in _code_dirs()]
        return cls(net_fd, mnt_fd, _identity(os.fstat(net_fd)), _identity(os.fstat(mnt_fd)), code)

    def _code_visible(self) -> bool:
        try:
            return all(_identity(os.stat(d)) == ident for d, ident in self.code)
        except OSError:
            return False


#: ioctl(2) on a namespace fd: which kind of namespace it is (linux/nsfs.h).
NS_GET_NSTYPE = 0xB703


def are_namespaces(fds: tuple[int, ...]) -> bool:
    """Whether `fds` are a network and a mount namespace, in that order (what a caller sends)."""
    if len(fds) != 2:
        return False
    try:
        return [fcntl.ioctl(fd, NS_GET_NSTYPE) for fd in fds] == [CLONE_NEWNET, CLONE_NEWNS]
    except OSError:  # not a namespace file at all
        return False


class MountHop:
    """Runs a lookup in the caller's mount namespace, for a worker that stays in its own."""

    def __init__(self, home: Home, mnt_fd: int) -> None:
        self.home = home
        self.mnt_fd = mnt_fd

    def __call__(self, fn: Callable[[], T]) -> T:
        setns(self.mnt_fd, CLONE_NEWNS)
        try:
            return fn()
        finally:
            go_home(self.home, net=False, mnt=True)


@contextmanager
def caller_namespaces(home: Home, fds: tuple[int, ...]) -> Iterator[MountHop | None]:
    """Enter the caller's net (and, where usable, mount) namespace for the block.

    Yields a `MountHop` when the worker stays in its own mount namespace (the caller's does not
    show our code), so that paths the caller named can still be looked up where they exist.
    """
    net_fd, mnt_fd = fds
    net, mnt = _identity(os.fstat(net_fd)), _identity(os.fstat(mnt_fd))
    moved_mnt = moved_net = False
    try:
        if mnt != home.mnt and home.mnt_usable.get(mnt, True):
            setns(mnt_fd, CLONE_NEWNS)
            moved_mnt = True
            if mnt not in home.mnt_usable:
                home.mnt_usable[mnt] = home._code_visible()
            if not home.mnt_usable[mnt]:
                setns(home.mnt_fd, CLONE_NEWNS)
                moved_mnt = False
        if net != home.net:
            setns(net_fd, CLONE_NEWNET)
            moved_net = True
        yield MountHop(home, mnt_fd) if mnt != home.mnt and not moved_mnt else None
    finally:
        go_home(home, net=moved_net, mnt=moved_mnt)


def go_home(home: Home, net: bool = True, mnt: bool = True) -> None:
    """Back to the worker's namespaces; a worker that cannot get there must not go on."""
    try:
        if net:
            setns(home.net_fd, CLONE_NEWNET)
        if mnt:
            setns(home.mnt_fd, CLONE_NEWNS)
            os.chdir("/")
    except OSError as err:
        os.write(2, f"pycni daemon worker: cannot return to its namespaces: {err}\n".encode())
        os._exit(70)

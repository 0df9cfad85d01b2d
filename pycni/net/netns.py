"""Network namespaces by path: enter one on the calling thread, or open netlink in one.

`setns(2)` with CLONE_NEWNET changes only the calling thread, so `entered` is safe with many
threads at once as long as each restores its own namespace, which it does in `finally`.
`rtnl` opens its netlink socket while inside the namespace and leaves at once: a socket
stays bound to the namespace it was created in, so the caller never stays switched and no
helper process is forked (pyroute2's own `netns=` forks one per socket, ~10 ms).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pycni.cni import callerview
from pycni.cni.errors import InternalError, InvalidEnvironment, NotFound
from pycni.cni.runtime import OWN_NETNS, is_netns_file

if TYPE_CHECKING:
    from pyroute2 import IPRoute

    from pycni.net.nlsock import Rtnl

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
log = logging.getLogger(__name__)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


class NetnsGone(NotFound):
    """The netns path does not exist: the pod is gone. DEL treats this as done."""


class NotANetns(InvalidEnvironment):
    """The path exists but is not a network namespace."""


def open_netns(path: str) -> int:
    """An fd of the netns at `path`; `NetnsGone` if missing, `NotANetns` if it is something else."""
    kind = is_netns_file(path)
    if kind is None:
        raise NetnsGone(f"netns {path} does not exist")
    if not kind:
        raise NotANetns(f"{path} is not a network namespace")
    try:
        return callerview.open_readonly(path)
    except FileNotFoundError:
        raise NetnsGone(f"netns {path} does not exist") from None


def for_teardown(path: str) -> str:
    """CNI_NETNS as DEL uses it: a path that is not a network namespace counts as gone ("").

    DEL must succeed when the pod's netns is gone and still release everything on the node side
    (IPAM, rules, devices), so a path that cannot be entered is treated the same way, with a
    warning. Nothing of ours can be inside something that is not a netns. ADD and CHECK refuse
    such a path with code 4 (`RuntimeArgs.from_env`).
    """
    if path and is_netns_file(path) is False:
        log.warning("CNI_NETNS %s is not a network namespace: treated as gone, node side cleaned up", path)
        return ""
    return path


def require_netns(path: str) -> None:
    """ADD's pod-side check before its first change: `path` is a netns that exists (a `stat`).

    A CNI_IFNAME already taken in the pod is found when the interface is made, and undone like
    any other failure: checking it here would cost every ADD a netlink socket in the pod.
    """
    kind = is_netns_file(path)
    if kind is None:
        raise NetnsGone(f"netns {path} does not exist")
    if not kind:
        raise NotANetns(f"{path} is not a network namespace")


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace `fd` (of kind `nstype`)."""
    if _libc().setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


@contextmanager
def own_fd() -> Iterator[int]:
    """An fd of the calling thread's own netns, for moving links here or coming back."""
    fd = os.open(OWN_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def entered_fd(fd: int) -> Iterator[None]:
    """Move the calling thread into the netns `fd` for the block; always moves it back."""
    home = os.open(OWN_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
        try:
            yield
        finally:
            try:
                setns(home)
            except OSError as err:  # the thread would stay in the pod: never let it go on
                os.write(2, f"pycni: cannot restore netns: {err}\n".encode())
                os._exit(70)
    finally:
        os.close(home)


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the block inside the netns at `path` (for /proc/sys writes and raw sockets)."""
    fd = open_netns(path)
    try:
        with entered_fd(fd):
            yield
    finally:
        os.close(fd)


@contextmanager
def rtnl(path: str | int | None = None) -> Iterator[Rtnl]:
    """The rtnetlink of the netns at `path` (an fd, or None for the caller's own).

    The socket is made inside the namespace and stays bound to it, so the thread leaves at
    once. The handle keeps an fd of the namespace (`Rtnl.netns_fd`) until it closes.
    """
    from pycni.net.nlsock import NetlinkSocket, Rtnl

    if path is None or path == "":
        home = os.open(OWN_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    elif isinstance(path, int):
        home = os.dup(path)
    else:
        home = open_netns(path)
    try:
        if path is None or path == "":
            nl = NetlinkSocket()
        else:
            with entered_fd(home):
                nl = NetlinkSocket()
    except BaseException:
        os.close(home)
        raise
    handle = Rtnl(nl, home, _iproute_in)
    try:
        yield handle
    finally:
        handle.close()


def _iproute_in(fd: int) -> IPRoute:
    """pyroute2's IPRoute, its socket made in the netns `fd`."""
    from pyroute2 import IPRoute

    with entered_fd(fd):
        return IPRoute()


@contextmanager
def temporary() -> Iterator[int]:
    """A fresh, unnamed netns held by an fd; the kernel frees it when the fd closes.

    Used to rename devices away from udev and from name clashes in either namespace.
    """
    home = os.open(OWN_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise InternalError(f"cannot create a temporary netns: {os.strerror(err)}")
        fd = os.open(OWN_NETNS, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(home)
        except OSError as err:
            os.write(2, f"pycni: cannot restore netns: {err}\n".encode())
            os._exit(70)
    finally:
        os.close(home)
    try:
        yield fd
    finally:
        os.close(fd)

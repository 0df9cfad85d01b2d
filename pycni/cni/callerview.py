"""The caller's view of the filesystem and of the pod's netns, for a request run away from it.

An exec'd plugin inherits its caller's mount namespace: `CNI_NETNS`, and every netns path a
plugin recorded for another pod, mean what they mean to the container runtime. A request the
node daemon serves runs in a worker that may live in a mount namespace of its own (the
DaemonSet's container), where the runtime's netns directory (`/run/netns`, or containerd's
state dir with `netns_mounts_under_state_dir`) may not exist at all.

So the daemon installs a view for each request:

- the pod's netns as the caller opened it (an fd sent with the request): every use of the
  request's `CNI_NETNS` path goes to that fd, never to the path;
- a hop into the caller's mount namespace for any other path looked up here (a netns another
  pod holds, recorded at its ADD), so it is judged as the runtime would judge it.

Outside the daemon no view is installed and everything is the plain system call. Only
`os.stat`/`os.open` run inside the hop: nothing that could import or touch anything else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

T = TypeVar("T")


class MountHop(Protocol):
    """Runs `fn` in the caller's mount namespace and comes back."""

    def __call__(self, fn: Callable[[], T]) -> T: ...


@dataclass(frozen=True)
class View:
    """One request's view: its pod netns fd (None: the caller sent none) and the mount hop."""

    netns_path: str
    netns_fd: int | None
    hop: MountHop | None
    #: The caller deletes one link in the pod's netns itself, if asked (`leave_link_to_caller`).
    caller_unlinks: bool = False
    #: The link left to it, once asked.
    left: list[str] = field(default_factory=list)

    def pinned(self, path: str) -> bool:
        return self.netns_fd is not None and bool(path) and path == self.netns_path


_VIEW: ContextVar[View | None] = ContextVar("pycni_caller_view", default=None)


@dataclass(frozen=True)
class LeftLink:
    """A pod link an in-process delegate's DEL left to its caller to delete."""

    netns_path: str
    ifname: str


_LEFT: ContextVar[list[LeftLink] | None] = ContextVar("pycni_left_links", default=None)


@contextmanager
def links_left_to_me() -> Iterator[list[LeftLink]]:
    """The pod links that DELs run in-process in the block leave to this caller.

    A meta-plugin DELs its delegates one after the other; each bridge/vxlan DEL ends waiting
    ~20 ms in the kernel for its veth's unregistration. Gathered here, they are deleted together
    once every delegate has run its other steps (`links.delete_links_together`), so a pod's DEL
    waits once, not once per network. The caller must delete every link it got (the list).
    """
    left: list[LeftLink] = []
    token = _LEFT.set(left)
    try:
        yield left
    finally:
        _LEFT.reset(token)


@contextmanager
def installed(
    netns_path: str, netns_fd: int | None, hop: MountHop | None, caller_unlinks: bool = False
) -> Iterator[View]:
    """Serve the block's lookups from the caller's view (the fd stays owned by the caller)."""
    view = View(netns_path, netns_fd, hop, caller_unlinks and netns_fd is not None)
    token = _VIEW.set(view)
    try:
        yield view
    finally:
        _VIEW.reset(token)


def leave_link_to_caller(netns_path: str, ifname: str) -> bool:
    """True when the caller will delete `ifname` in the request's own netns after the answer.

    Deleting a veth waits ~20 ms in the kernel for its unregistration, using no CPU. Done by the
    caller (the native forwarder, one process per call like any exec'd plugin), that wait no
    longer holds a daemon worker, so parallel DELs overlap their waits as exec'd plugins do. The
    worker has then run every other step; the caller deletes the link before it exits with the
    answer (docs/daemon.md, "The pod's link deleted by the caller"). One link per request, in
    the netns the caller opened itself; anything else is deleted here.
    """
    gathered = _LEFT.get()
    if gathered is not None:  # a caller in this process (`links_left_to_me`)
        gathered.append(LeftLink(netns_path, ifname))
        return True
    view = _VIEW.get()
    if view is None or not view.caller_unlinks or not view.pinned(netns_path) or view.left:
        return False
    view.left.append(ifname)
    return True


def _in_caller_mounts(fn: Callable[[], T]) -> T:
    view = _VIEW.get()
    if view is None or view.hop is None:
        return fn()
    return view.hop(fn)


def stat(path: str) -> os.stat_result:
    """`os.stat` as the caller sees `path` (the request's own netns: its fd)."""
    view = _VIEW.get()
    if view is not None and view.pinned(path):
        assert view.netns_fd is not None
        return os.fstat(view.netns_fd)
    return _in_caller_mounts(lambda: os.stat(path))


def open_readonly(path: str) -> int:
    """A new close-on-exec fd of `path` as the caller sees it (the request's netns: a dup)."""
    view = _VIEW.get()
    if view is not None and view.pinned(path):
        assert view.netns_fd is not None
        return os.dup(view.netns_fd)
    return _in_caller_mounts(lambda: os.open(path, os.O_RDONLY | os.O_CLOEXEC))


def path_for_child(path: str) -> str:
    """`CNI_NETNS` for a plugin this process execs: the path, unless only our fd reaches it.

    A child runs in this process's mount namespace. When the request's netns path names the
    same namespace here too, the child gets the path unchanged; otherwise it gets our fd's
    `/proc/<pid>/fd/<n>`, which opens that namespace from any mount namespace while the
    request (which holds the fd) runs.
    """
    view = _VIEW.get()
    if view is None or not view.pinned(path):
        return path
    assert view.netns_fd is not None
    theirs = os.fstat(view.netns_fd)
    try:
        ours = os.stat(path)
    except OSError:
        ours = None
    if ours is not None and (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino):
        return path
    return f"/proc/{os.getpid()}/fd/{view.netns_fd}"

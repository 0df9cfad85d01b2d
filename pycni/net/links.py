"""Links, typed: looking them up, changing their attributes, moving, renaming, deleting them.

Named by idempotence: `ensure_*` creates or verifies, `setup_*` creates, `delete_*` treats
"missing" as done. They take the `Rtnl` of a namespace (one per namespace per request, see
`pycni.net.netns.rtnl`) and return frozen `Link`s, so untyped netlink messages stop here. Every
request goes over its synchronous socket (`pycni.net.nlsock`), built from pyroute2's message
classes, and asks for as little as it needs: one link by name or index rather than a dump.
Creating links is `pycni.net.newlink`'s; addresses and routes have their own modules.

pyroute2 is imported at module level: only ops modules import this one, after the runner has
answered VERSION and validated the config, and they open netlink sockets anyway.
"""

from __future__ import annotations

import errno
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink import NLM_F_APPEND, NLM_F_CREATE
from pyroute2.netlink.rtnl import RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from pycni.cni.errors import AlreadyExists, NotFound
from pycni.net.nlsock import NLA, Rtnl, attributes, dump, tolerating

IFF_UP = 0x1  # linux/if.h: administratively up
IFF_PROMISC = 0x100  # receive all frames
IFF_LOWER_UP = 0x10000  # carrier
RTEXT_FILTER_SKIP_STATS = 1 << 3  # links without their counters: smaller, cheaper answers
IFNAMSIZ = 16  # a longer name can only be an altname
RTM_NEWLINKPROP = 108  # linux/rtnetlink.h: add an altname (IFLA_PROP_LIST)
RTM_DELLINKPROP = 109  # remove one


class LinkNotFound(NotFound):
    """No link of that name or index in the namespace."""


class LinkExists(AlreadyExists):
    """The name (or an altname) is taken in the namespace."""


@dataclass(frozen=True)
class Link:
    """A link as the kernel reports it; `master` and `peer_index` are 0 when it has none."""

    index: int
    name: str
    mac: str
    mtu: int
    kind: str
    master: int
    up: bool
    promisc: bool
    carrier: bool
    alias: str
    peer_index: int
    altnames: tuple[str, ...]


def to_link(msg: Any) -> Link:
    """A link message of a dump or get, typed (for the kind-specific modules beside this one)."""
    info = msg.get("IFLA_LINKINFO")
    altnames = msg.get("IFLA_PROP_LIST")
    return Link(
        index=msg["index"],
        name=msg.get("IFLA_IFNAME"),
        mac=(msg.get("IFLA_ADDRESS") or "").lower(),
        mtu=msg.get("IFLA_MTU") or 0,
        kind=(info.get("IFLA_INFO_KIND") if info else None) or "",
        master=msg.get("IFLA_MASTER") or 0,
        up=bool(msg["flags"] & IFF_UP),
        promisc=bool(msg["flags"] & IFF_PROMISC),
        carrier=bool(msg["flags"] & IFF_LOWER_UP),
        alias=msg.get("IFLA_IFALIAS") or "",
        peer_index=msg.get("IFLA_LINK") or 0,
        altnames=tuple(altnames.get_attrs("IFLA_ALT_IFNAME")) if altnames else (),
    )


#: linux/if_link.h attribute types `parse_link` reads.
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_GROUP, IFLA_PROP_LIST, IFLA_ALT_IFNAME = 18, 20, 27, 52, 53
IFLA_INFO_KIND = 1
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change (after the nlmsghdr)
_U32 = struct.Struct("=I")
_PAYLOAD = 16 + _IFINFOMSG.size  # where a link message's attributes start


def parse_link(raw: bytes) -> Link:
    """A link message (RTM_NEWLINK, from `Rtnl.nl.get_raw`/`dump_raw`) read straight into a `Link`.

    The same fields as `to_link`, which reads pyroute2's decoding of the message: that decodes
    every attribute of a link (forty and more, nested ones too) and cost ~80% of a lookup's CPU,
    for the eight a `Link` holds. `tests/net/test_links.py` holds the two equal on every kind.
    """
    _, _, index, flags, _ = _IFINFOMSG.unpack_from(raw, 16)
    attrs = dict(attributes(raw, _PAYLOAD, len(raw)))
    info = attrs.get(IFLA_LINKINFO)
    kind = dict(attributes(info, 0, len(info))).get(IFLA_INFO_KIND) if info else None
    props = attrs.get(IFLA_PROP_LIST)
    altnames = (
        [_text(v) for t, v in attributes(props, 0, len(props)) if t == IFLA_ALT_IFNAME] if props else []
    )
    address = attrs.get(IFLA_ADDRESS)
    return Link(
        index=index,
        name=_text(attrs[IFLA_IFNAME]) if IFLA_IFNAME in attrs else "",
        mac=":".join(f"{b:02x}" for b in address) if address else "",
        mtu=_u32(attrs.get(IFLA_MTU)),
        kind=_text(kind) if kind else "",
        master=_u32(attrs.get(IFLA_MASTER)),
        up=bool(flags & IFF_UP),
        promisc=bool(flags & IFF_PROMISC),
        carrier=bool(flags & IFF_LOWER_UP),
        alias=_text(attrs[IFLA_IFALIAS]) if IFLA_IFALIAS in attrs else "",
        peer_index=_u32(attrs.get(IFLA_LINK)),
        altnames=tuple(altnames),
    )


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def _u32(value: bytes | None) -> int:
    return _U32.unpack_from(value)[0] if value and len(value) >= _U32.size else 0


def link_msg(
    index: int = 0, attrs: list[tuple[str, Any]] | None = None, flags: int = 0, change: int = 0
) -> Any:
    """An RTM_*LINK message about link `index` (0: named in `attrs`, or a new one)."""
    msg = ifinfmsg()
    msg["index"] = index
    msg["flags"] = flags
    msg["change"] = change
    msg["attrs"] = list(attrs or [])
    return msg


IFLA_EXT_MASK = 29
AF_UNSPEC = 0


def link_request(
    index: int = 0, name: str | None = None, flags: int = 0, change: int = 0, lookup: bool = False
) -> bytes:
    """The body of a link request of the fixed shapes every pod's path sends, packed directly.

    The same bytes pyroute2 encodes from `link_msg` (`tests/net/test_link_decoding.py` compares
    them): an ifinfomsg, then, for a lookup, `IFLA_EXT_MASK` (no counters), then the name (as
    `name_attr` says). pyroute2's generic encoder cost more CPU than the kernel's work here.
    """
    body = _IFINFOMSG.pack(AF_UNSPEC, 0, index, flags, change)
    if lookup:
        body += _attribute(IFLA_EXT_MASK, _U32.pack(RTEXT_FILTER_SKIP_STATS))
    if name is not None:
        kind = IFLA_ALT_IFNAME if len(name) >= IFNAMSIZ else IFLA_IFNAME
        body += _attribute(kind, name.encode() + b"\0")
    return body


def _attribute(kind: int, payload: bytes) -> bytes:
    length = NLA.size + len(payload)
    return NLA.pack(length, kind) + payload + bytes(-length % 4)


def name_attr(name: str) -> tuple[str, str]:
    """How a link is named in a request: IFLA_IFNAME, or IFLA_ALT_IFNAME past IFNAMSIZ."""
    return ("IFLA_ALT_IFNAME" if len(name) >= IFNAMSIZ else "IFLA_IFNAME", name)


def _get(ipr: Rtnl, index: int = 0, name: str | None = None) -> Link | None:
    """One RTM_GETLINK looked up by the kernel (a dump would cost more with every pod)."""
    with tolerating(errno.ENODEV):
        return parse_link(ipr.nl.get_raw(link_request(index, name, lookup=True), RTM_GETLINK))
    return None


def find_link(ipr: Rtnl, name: str) -> Link | None:
    return _get(ipr, name=name)


def get_link(ipr: Rtnl, name: str) -> Link:
    link = find_link(ipr, name)
    if link is None:
        raise LinkNotFound(f"link {name!r} not found")
    return link


def link_by_index(ipr: Rtnl, index: int) -> Link | None:
    return _get(ipr, index=index) if index > 0 else None


def list_links(ipr: Rtnl) -> list[Link]:
    """Every link of the namespace, in the kernel's order."""
    return [parse_link(m) for m in _dump_links(ipr)]


def _dump_links(ipr: Rtnl) -> list[bytes]:
    """Every link message of the namespace, undecoded, without counters."""
    msg = link_msg(attrs=[("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)])
    return dump(lambda: ipr.nl.dump_raw(msg, RTM_GETLINK))


def set_link(
    ipr: Rtnl,
    link: Link,
    *,
    master: int | None = None,
    mtu: int | None = None,
    address: str | None = None,
    ifname: str | None = None,
    ifalias: str | None = None,
    net_ns_fd: int | None = None,
) -> None:
    """Change the given attributes of `link` in one request (`ip link set`); None leaves one as is."""
    wanted = {
        "IFLA_MASTER": master,
        "IFLA_MTU": mtu,
        "IFLA_ADDRESS": address,
        "IFLA_IFNAME": ifname,
        "IFLA_IFALIAS": ifalias,
        "IFLA_NET_NS_FD": net_ns_fd,
    }
    attrs = [(attr, value) for attr, value in wanted.items() if value is not None]
    ipr.nl.change(link_msg(link.index, attrs), RTM_NEWLINK)


def _set_flags(ipr: Rtnl, link: Link, flags: int, mask: int) -> None:
    ipr.nl.change(link_request(link.index, flags=flags, change=mask), RTM_NEWLINK)


def set_up(ipr: Rtnl, link: Link) -> None:
    _set_flags(ipr, link, IFF_UP, IFF_UP)


def set_down(ipr: Rtnl, link: Link) -> None:
    _set_flags(ipr, link, 0, IFF_UP)


def set_promisc(ipr: Rtnl, link: Link) -> None:
    """Promiscuous mode on (`ip link set promisc on`); nothing to do when it already is."""
    if not link.promisc:
        _set_flags(ipr, link, IFF_PROMISC, IFF_PROMISC)


def delete_link(ipr: Rtnl, link: str | Link) -> bool:
    """Delete a link if present; False when it was already gone.

    By name, or given a `Link`, by index: then a link renamed meanwhile is still the one deleted,
    and a new link that took the name is left alone.
    """
    msg = link_request(name=link) if isinstance(link, str) else link_request(link.index)
    with tolerating(errno.ENODEV, errno.ENOENT) as gone:
        ipr.nl.change(msg, RTM_DELLINK)
    return not gone


def delete_links_together(ipr: Rtnl, names: Sequence[str]) -> list[Exception | None]:
    """Delete links of one netns as `delete_link` does, in one kernel batch: what each failed with.

    A veth's RTM_DELLINK returns once the kernel has unregistered it, ~20 ms of RCU grace
    periods, much of it under the rtnl lock: links deleted one request each wait about once
    each, even from several threads. Deleted as one group (RTM_DELLINK by IFLA_GROUP, as
    `ip link delete group` does), they go in one batch that waits once. They are first put in a
    group no link of the netns is in; if the kernel refuses the batch (a kind it cannot delete,
    a link gone meanwhile), each is deleted on its own, and one that stays gets its group back.
    """
    failures: list[Exception | None] = [None] * len(names)
    groups = _groups_by_name(ipr) if len(names) > 1 else {}
    batch = [i for i, name in enumerate(names) if name in groups]
    if len(batch) > 1:
        group = _unused_group(set(groups.values()))
        with tolerating(any_errno=True) as refused:
            for i in batch:
                _set_group(ipr, names[i], group)
            ipr.nl.change(link_msg(attrs=[("IFLA_GROUP", group)]), RTM_DELLINK)
        if not refused:
            return failures
    for i, name in enumerate(names):  # one by one
        try:
            delete_link(ipr, name)
        except Exception as exc:  # returned to the caller, which knows whose link it was
            failures[i] = exc
            if name in groups:
                with tolerating(any_errno=True):
                    _set_group(ipr, name, groups[name])
    return failures


def _set_group(ipr: Rtnl, name: str, group: int) -> None:
    ipr.nl.change(link_msg(attrs=[name_attr(name), ("IFLA_GROUP", group)]), RTM_NEWLINK)


def _groups_by_name(ipr: Rtnl) -> dict[str, int]:
    """{name: IFLA_GROUP} of every link of the namespace (one dump; a pod's netns has a few)."""
    groups = {}
    for raw in _dump_links(ipr):
        attrs = dict(attributes(raw, _PAYLOAD, len(raw)))
        if IFLA_IFNAME in attrs:
            groups[_text(attrs[IFLA_IFNAME])] = _u32(attrs.get(IFLA_GROUP))
    return groups


def _unused_group(used: set[int]) -> int:
    """A link group number none of `used` has (0, the default, never)."""
    while (group := random.randrange(1 << 16, 1 << 31)) in used:
        pass
    return group


def move_link(ipr: Rtnl, link: Link, netns_fd: int) -> None:
    """Move `link` into the netns held by `netns_fd`; its index may change there, its name does not."""
    with tolerating(errno.EEXIST, failure=f"failed to move link {link.name!r} to another netns") as taken:
        set_link(ipr, link, net_ns_fd=netns_fd)
    if taken:
        msg = f"cannot move {link.name!r}: its name or an altname exists in the target netns"
        raise LinkExists(msg) from taken.error


def rename_link(ipr: Rtnl, link: Link, name: str) -> None:
    """Rename `link` (the kernel needs it down); EEXIST becomes `LinkExists`."""
    with tolerating(errno.EEXIST, failure=f"failed to rename link {link.name!r} to {name!r}") as taken:
        set_link(ipr, link, ifname=name)
    if taken:
        raise LinkExists(f"cannot rename {link.name!r} to {name!r}: the name is taken") from taken.error


def set_alias(ipr: Rtnl, link: Link, alias: str) -> None:
    """Set IFLA_IFALIAS; an empty string removes it."""
    set_link(ipr, link, ifalias=alias)


def _altname_msg(link: Link, altname: str) -> Any:
    return link_msg(link.index, [("IFLA_PROP_LIST", {"attrs": [("IFLA_ALT_IFNAME", altname)]})])


def add_altname(ipr: Rtnl, link: Link, altname: str) -> None:
    """Add an alternative name; one already on this link is fine."""
    failure = f"failed to add altname {altname!r} to {link.name!r}"
    with tolerating(errno.EEXIST, failure=failure) as taken:
        ipr.nl.change(_altname_msg(link, altname), RTM_NEWLINKPROP, NLM_F_CREATE | NLM_F_APPEND)
    if taken:
        owner = find_link(ipr, altname)
        if owner is None or owner.index != link.index:
            msg = f"cannot add altname {altname!r} to {link.name!r}: the name is taken"
            raise LinkExists(msg) from taken.error


def del_altname(ipr: Rtnl, link: Link, altname: str) -> None:
    """Remove an alternative name; one already gone is fine."""
    with tolerating(
        errno.ENOENT, errno.ENODEV, failure=f"failed to remove altname {altname!r} from {link.name!r}"
    ):
        ipr.nl.change(_altname_msg(link, altname), RTM_DELLINKPROP)

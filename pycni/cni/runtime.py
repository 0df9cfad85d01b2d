"""What the runtime tells a plugin through the environment, parsed and validated.

Standard library only (used on the VERSION path).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pycni.cni import callerview
from pycni.cni.errors import InvalidConfig, InvalidEnvironment


class Command(StrEnum):
    ADD = "ADD"
    DEL = "DEL"
    CHECK = "CHECK"
    STATUS = "STATUS"
    GC = "GC"
    VERSION = "VERSION"


#: Which variables each command needs (CNI_NETNS is optional on DEL: the netns may be gone).
REQUIRED_ENV: dict[Command, tuple[str, ...]] = {
    Command.ADD: ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    Command.CHECK: ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    Command.DEL: ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    Command.STATUS: ("CNI_PATH",),
    Command.GC: ("CNI_PATH",),
    Command.VERSION: (),
}

#: Every variable of the CNI protocol a plugin reads; each must be clean text (`env_text`).
CNI_VARS = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")

#: Network names (spec) and container IDs (libcni) share one rule. The anchors are for
#: pydantic's `pattern` (a full-text match there); Python code must use `is_valid_name`,
#: since `re.match` lets `$` match before a trailing newline.
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$"
_NAME = re.compile(NAME_PATTERN)
#: IFNAMSIZ is 16 bytes with the terminating NUL.
IFNAME_MAX = 15
#: The calling thread's own network namespace file.
OWN_NETNS = "/proc/thread-self/ns/net"


def is_valid_name(name: str) -> bool:
    """Whether `name` is a valid network name or container ID, as a whole."""
    return _NAME.fullmatch(name) is not None


def env_text(env: Mapping[str, str], name: str) -> str:
    """The variable's value ("" when unset), refused unless it is UTF-8 text without NUL.

    Python hands over bytes that are not UTF-8 as lone surrogates; they would fail later, deep
    in a file or netlink call, so they are refused here, naming the variable.
    """
    value = env.get(name, "")
    _require_text(name, value)
    return value


def _require_text(name: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidEnvironment(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEnvironment(f"{name} {value!r} is not valid UTF-8") from None


def validate_container_id(container_id: str) -> None:
    if not is_valid_name(container_id):
        raise InvalidEnvironment(f"CNI_CONTAINERID {container_id!r} is invalid: it must match {NAME_PATTERN}")


def ifname_problem(ifname: str) -> str | None:
    """Why the kernel (or the reference skel) would refuse `ifname` as an interface name, or None.

    The length is counted in bytes, as the kernel does: "é" takes two of the fifteen.
    """
    if not ifname:
        return "is empty"
    if "\x00" in ifname:
        return "contains a NUL character"
    try:
        size = len(ifname.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if size > IFNAME_MAX:
        return f"is too long (max {IFNAME_MAX} bytes)"
    if ifname in (".", ".."):
        return "is not allowed"
    if any(c in "/:" or c.isspace() for c in ifname):
        return "contains '/', ':' or whitespace"
    return None


def validate_ifname(ifname: str) -> None:
    """CNI_IFNAME held to the rules of `ifname_problem` (code 4)."""
    problem = ifname_problem(ifname)
    if problem is not None:
        shown = "" if not ifname or "\x00" in ifname else f" {ifname!r}"
        raise InvalidEnvironment(f"CNI_IFNAME{shown} {problem}")


def validate_link_name(key: str, name: str) -> None:
    """A link name from the config (`key`), held to the same rules: code 7 naming the key.

    The kernel would refuse it too, but only once ADD is under way and as an internal error.
    """
    problem = ifname_problem(name)
    if problem is not None:
        raise InvalidConfig(f"{key}: {name!r} is not a valid interface name: {problem}")


def is_netns_file(path: str) -> bool | None:
    """Whether `path` is a network namespace file; None when there is nothing at `path`.

    A path that cannot be looked at (no permission, a symlink loop) is not a netns: False.

    Every namespace file lives on the kernel's one nsfs filesystem, so its device is the one
    our own netns file has (an `os.stat` each: no ctypes, cheap enough for the runner). The path
    is looked at as the caller sees it (`callerview`: the daemon's pinned fd, or its mount hop).
    """
    try:
        st = callerview.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:  # unreachable or unnameable: nothing usable is there
        return None if err.errno == errno.ENAMETOOLONG else False
    return st.st_dev == os.stat(OWN_NETNS).st_dev


def validate_netns(netns: str) -> None:
    """CNI_NETNS must be a netns file when it exists (a missing one is the plugin's "gone" case)."""
    if is_netns_file(netns) is False:
        raise InvalidEnvironment(f"CNI_NETNS {netns!r} is not a network namespace")


def parse_cni_args(raw: str) -> tuple[tuple[str, str], ...]:
    """Parse `K=V;K2=V2` (CNI_ARGS). Whether unknown keys are an error is the plugin's call."""
    pairs: list[tuple[str, str]] = []
    for item in filter(None, raw.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidEnvironment(f"CNI_ARGS has an invalid pair {item!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return tuple(pairs)


@dataclass(frozen=True)
class RuntimeArgs:
    """The per-call parameters of a CNI request (empty strings where a command has none)."""

    command: Command
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: tuple[tuple[str, str], ...] = ()
    path: tuple[str, ...] = ()
    #: The caller's whole environment, passed on to plugins exec'd for this request.
    env: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def arg(self, key: str) -> str | None:
        """The value of one CNI_ARGS key, if given."""
        return next((v for k, v in self.args if k == key), None)

    @property
    def ignore_unknown_args(self) -> bool:
        return (self.arg("IgnoreUnknown") or "").lower() in ("1", "true")

    def to_env(self) -> dict[str, str]:
        """The environment a plugin exec'd for this request gets (spec §Parameters).

        Its `CNI_NETNS` reaches the same namespace from the child's mount namespace
        (`callerview.path_for_child`): a daemon worker may not see the runtime's path.
        """
        env = {"CNI_COMMAND": self.command.value, "CNI_PATH": ":".join(self.path)}
        if self.command in (Command.ADD, Command.DEL, Command.CHECK):
            netns = callerview.path_for_child(self.netns)
            env.update(CNI_CONTAINERID=self.container_id, CNI_NETNS=netns, CNI_IFNAME=self.ifname)
            if self.args:
                env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in self.args)
        return env

    def with_command(self, command: Command) -> RuntimeArgs:
        return RuntimeArgs(
            command, self.container_id, self.netns, self.ifname, self.args, self.path, self.env
        )

    @classmethod
    def from_env(cls, command: Command, env: Mapping[str, str]) -> RuntimeArgs:
        missing = [name for name in REQUIRED_ENV[command] if not env.get(name)]
        if missing:
            raise InvalidEnvironment(f"required env variables {missing} missing")
        text = {name: env_text(env, name) for name in CNI_VARS}
        rt = cls(
            command=command,
            container_id=text["CNI_CONTAINERID"],
            netns=text["CNI_NETNS"],
            ifname=text["CNI_IFNAME"],
            args=parse_cni_args(text["CNI_ARGS"]),
            path=tuple(filter(None, text["CNI_PATH"].split(":"))),
            env=env,
        )
        if rt.container_id:
            validate_container_id(rt.container_id)
        if command in (Command.ADD, Command.DEL, Command.CHECK):
            validate_ifname(rt.ifname)
        if command in (Command.ADD, Command.CHECK):
            validate_netns(rt.netns)
        return rt

"""Writing sysctls. /proc/sys/net is per netns of the opening thread: call inside `netns.entered`."""

from __future__ import annotations

from pathlib import Path

PROC_SYS = Path("/proc/sys")


def path_of(name: str) -> Path:
    """`net.ipv4.ip_forward` -> /proc/sys/net/ipv4/ip_forward (interface names may hold dots)."""
    return PROC_SYS / name.replace(".", "/") if "/" not in name else PROC_SYS / name


def write(name: str, value: str) -> None:
    path = path_of(name)
    if path.read_text().strip() != value:
        path.write_text(value)


def write_if_present(name: str, value: str) -> bool:
    """Like `write`, but a missing knob (IPv6 disabled, old kernel) is not an error."""
    try:
        write(name, value)
    except FileNotFoundError:
        return False
    return True


def read(name: str) -> str:
    return path_of(name).read_text().strip()

"""One error hierarchy whose class carries the CNI spec error code.

Plugin code raises these; the runner (and the daemon) turn any exception into the spec's
error object through `to_error`, so no other module maps exceptions to codes.
"""

from __future__ import annotations

import errno as errno_mod
import os
import sys
from typing import Any, ClassVar


class CNIError(Exception):
    """A failure reported to the runtime as `{"code", "msg", "details"}`."""

    code: ClassVar[int] = 999

    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if cni_version:
            out["cniVersion"] = cni_version
        out["code"] = self.code
        out["msg"] = self.msg
        if self.details:
            out["details"] = self.details
        return out


class IncompatibleVersion(CNIError):
    code = 1


class UnsupportedField(CNIError):
    code = 2


class UnknownContainer(CNIError):
    code = 3


class InvalidEnvironment(CNIError):
    code = 4


class IOFailure(CNIError):
    code = 5


class DecodingFailure(CNIError):
    code = 6


class InvalidConfig(CNIError):
    code = 7


class TryAgainLater(CNIError):
    code = 11


class PluginNotAvailable(CNIError):
    """STATUS: the plugin cannot service ADD right now."""

    code = 50


class PluginNotAvailableLimitedConnectivity(CNIError):
    """STATUS: cannot service ADD, and existing pods may have limited connectivity."""

    code = 51


class PluginError(CNIError):
    """A plugin-specific failure (the spec reserves 100+ for these)."""

    code = 100


class InternalError(CNIError):
    code = 999


class NotFound(InternalError):
    """Something the request names does not exist (any more): a netns, a link, a device.

    DEL and GC treat these as "already done"; ADD and CHECK report them.
    """


class AlreadyExists(InternalError):
    """Something ADD would create or claim is already there (a name taken, a device held)."""


class PluginNotFound(InternalError):
    """A delegate's type names no executable on CNI_PATH, so it was not run (libcni's wording).

    Not a `NotFound`: a DEL must not take a missing plugin for work already done, except where
    nothing shows the plugin ever ran (`libcni.netlist.delete`).
    """

    def __init__(self, msg: str, details: str = "", plugin_type: str = "") -> None:
        super().__init__(msg, details)
        self.plugin_type = plugin_type

    @classmethod
    def on_path(cls, plugin_type: str, path: tuple[str, ...]) -> PluginNotFound:
        return cls(f"failed to find plugin {plugin_type!r} in path {list(path)}", plugin_type=plugin_type)


#: Each spec code's class, so an error relayed from a delegate keeps its class and code.
_BY_CODE: dict[int, type[CNIError]] = {
    cls.code: cls
    for cls in (
        IncompatibleVersion,
        UnsupportedField,
        UnknownContainer,
        InvalidEnvironment,
        IOFailure,
        DecodingFailure,
        InvalidConfig,
        TryAgainLater,
        PluginNotAvailable,
        PluginNotAvailableLimitedConnectivity,
        PluginError,
        InternalError,
    )
}


def from_code(code: int, msg: str, details: str = "") -> CNIError:
    """The error a delegate printed, as the class of its code (a plugin-specific code gets its own)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = _BY_CODE[code] = type(f"PluginError{code}", (PluginError,), {"code": code})
    return cls(msg, details)


def _netlink_errno(exc: BaseException) -> int | None:
    """The errno of a pyroute2 `NetlinkError`, else None.

    pyroute2 is not imported for this: if its exceptions module is not loaded, `exc` cannot be
    one of its errors, and the VERSION path stays free of it.
    """
    module = sys.modules.get("pyroute2.netlink.exceptions")
    if module is not None and isinstance(exc, module.NetlinkError) and isinstance(exc.code, int):
        return int(exc.code)
    return None


def to_error(exc: BaseException) -> CNIError:
    """Map any exception to the spec error the caller sees; never wraps a CNIError twice."""
    if isinstance(exc, CNIError):
        return exc
    code = _netlink_errno(exc)
    if code is not None:
        text = os.strerror(code) if code in errno_mod.errorcode else str(code)
        msg = exc.args[1] if len(exc.args) > 1 and exc.args[1] else text
        return InternalError(f"netlink request failed: {msg}", f"errno {code} ({text})")
    if isinstance(exc, OSError) and exc.errno is not None:
        return InternalError(
            f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), f"errno {exc.errno}"
        )
    if isinstance(exc, TimeoutError):
        return TryAgainLater(f"timed out: {exc}")
    return InternalError(f"internal error: {type(exc).__name__}: {exc}")

"""The two doors between JSON and the newest model: `parse_result` and `render`.

Plugins read delegate output and `prevResult` with `parse_result` and print with `render`; they
never see an older shape. Choosing the shape for a version is here; changing shape is `convert`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycni.cni.errors import DecodingFailure, IncompatibleVersion
from pycni.cni.types import v020, v040, v100
from pycni.cni.types.common import decode
from pycni.cni.types.convert import AnyResult, convert
from pycni.cni.version import CURRENT, SUPPORTED_VERSIONS, parse

#: The model that reads and writes each version's JSON.
SHAPES: dict[str, type[v020.Result] | type[v040.Result] | type[v100.Result]] = {
    **dict.fromkeys(v020.VERSIONS, v020.Result),
    **dict.fromkeys(v040.VERSIONS, v040.Result),
    **dict.fromkeys(v100.VERSIONS, v100.Result),
}


def parse_result(raw: Mapping[str, Any], default_version: str) -> v100.Result:
    """Any version's result JSON (a dict) -> the newest model, `cni_version` = the newest version.

    A result with no (or an empty) `cniVersion` is taken to be `default_version`, the config's
    version (libcni fixupResultVersion). Malformed input raises DecodingFailure (code 6); a
    well-formed version we do not speak raises IncompatibleVersion (code 1).
    """
    if not isinstance(raw, Mapping):
        raise DecodingFailure(f"a CNI result must be a JSON object, got {type(raw).__name__}")
    version = _result_version(raw, default_version)
    shape = SHAPES.get(version)
    if shape is None:
        raise IncompatibleVersion(
            f"unsupported CNI result version {version!r}; supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
    model: AnyResult = decode(shape, {**raw, "cniVersion": version}, version)
    newest = convert(model, version, CURRENT)
    if not isinstance(newest, v100.Result):  # pragma: no cover - guarded by the converter table test
        raise TypeError(f"conversion to {CURRENT} produced {type(newest).__name__}")
    return newest


def _result_version(raw: Mapping[str, Any], default_version: str) -> str:
    """The version the result claims, else `default_version`; either must look like X.Y.Z."""
    claimed = raw.get("cniVersion")
    if claimed is not None and not isinstance(claimed, str):
        raise DecodingFailure(f"invalid cniVersion {claimed!r} in result: expected a string")
    version = claimed or default_version
    parse(version)
    return version


def render(result: v100.Result, version: str) -> dict[str, Any]:
    """The newest model -> a JSON-ready dict in `version`'s shape, with `cniVersion` = `version`.

    The model is read as the newest shape whatever its `cni_version` says. A result the target
    cannot express (0.1.0/0.2.0 with no IP address) raises IncompatibleVersion (code 1).
    """
    if version not in SHAPES:
        raise IncompatibleVersion(
            f"cannot render a result as CNI {version!r}; supported: {', '.join(SUPPORTED_VERSIONS)}"
        )
    start = result.model_copy(update={"cni_version": CURRENT})
    out: dict[str, Any] = convert(start, CURRENT, version).model_dump(mode="json", by_alias=True)
    return out

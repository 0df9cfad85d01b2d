"""Network configuration lists, and the per-plugin config a runtime derives from them.

This is the runtime side of the spec (§Section 1 and "Deriving execution configuration"),
used by `pycni exec` and by the multus meta-plugin to call its delegates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationError, field_validator

from pycni.cni import strict_json, version
from pycni.cni.config import Model, describe_validation_error
from pycni.cni.errors import DecodingFailure, InvalidConfig
from pycni.cni.runtime import NAME_PATTERN


class NetConfList(Model):
    """A `.conflist`; a single `.conf` is read as a list of one plugin (libcni does the same)."""

    cni_version: str = Field("0.1.0", alias="cniVersion")
    cni_versions: list[str] = Field(default_factory=list, alias="cniVersions")
    name: str = Field(pattern=NAME_PATTERN)
    disable_check: bool = Field(False, alias="disableCheck")
    disable_gc: bool = Field(False, alias="disableGC")
    plugins: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("disable_check", "disable_gc", mode="before")
    @classmethod
    def _bool_or_string(cls, value: Any) -> Any:
        """libcni accepts "true"/"false" strings here."""
        if isinstance(value, str):
            return value.strip().lower() == "true"
        return value

    @property
    def negotiated_version(self) -> str:
        return version.negotiate(self.cni_version, self.cni_versions)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Self:
        if "plugins" not in raw:
            plugin = {k: v for k, v in raw.items() if k not in ("cniVersion", "cniVersions", "name")}
            raw = {k: raw[k] for k in ("cniVersion", "cniVersions", "name") if k in raw} | {
                "plugins": [plugin]
            }
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise InvalidConfig(describe_validation_error(err, "invalid network list config")) from err

    @classmethod
    def from_file(cls, path: Path) -> Self:
        raw = strict_json.loads(path.read_bytes(), str(path))
        if not isinstance(raw, dict):
            raise DecodingFailure(f"{path}: expected a JSON object")
        return cls.from_json(raw)

    def plugin_conf(
        self,
        plugin: dict[str, Any],
        prev_result: dict[str, Any] | None = None,
        capability_args: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The config one plugin of the list receives on stdin."""
        conf = {k: v for k, v in plugin.items() if k != "capabilities"}
        conf["cniVersion"] = self.negotiated_version
        conf["name"] = self.name
        runtime = {
            key: value
            for key, value in (capability_args or {}).items()
            if plugin.get("capabilities", {}).get(key)
        }
        if runtime:  # merged over what the plugin config itself carries (a meta-plugin's injections)
            conf["runtimeConfig"] = {**(plugin.get("runtimeConfig") or {}), **runtime}
        if prev_result is not None:
            conf["prevResult"] = prev_result
        return conf

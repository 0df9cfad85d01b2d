"""Where a VF's PF-side settings (MAC, VLAN, spoof check, trust, link state, rates) are read and set.

One small interface, two implementations, chosen per call by `Settings.vf_state_file`:
- unset: `pycni.net.sriov_vf.NetlinkVfControl`, the PF programmed over rtnetlink;
- `PYCNI_SRIOV_VF_STATE=<file>`: `FileVfControl`, the settings kept in a JSON file of the shape
  `{"<PF ifname>": {"<VF index>": {<VfState keys>}}}`, for nodes (and tests, and demos) without
  SR-IOV hardware. Operators and external tests seed and inspect it: a VF missing from the file
  reads as `VfState()`'s defaults, every write is atomic and under a lock, and keys the file
  holds that we do not know are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from pycni.cni.config import describe_validation_error
from pycni.cni.errors import InternalError
from pycni.cni.files import write_atomic
from pycni.net import lock
from pycni.net.vf_state import VfSettings, VfState

if TYPE_CHECKING:
    from pycni.cni.settings import Settings
    from pycni.net.nlsock import Rtnl


class VfControl(Protocol):
    """PF-side settings of the VFs of PFs in the node netns, by PF netdev name and VF index."""

    def get(self, pf: str, vf: int) -> VfState:
        """Every PF-side setting of VF `vf` of `pf`, as the PF reports them now."""
        ...

    def set(self, pf: str, vf: int, settings: VfSettings) -> None:
        """Change the settings `settings` names, in `APPLY_ORDER`; raises on the first refused."""
        ...


class FileVfControl:
    """PF-side VF settings in a JSON file instead of a PF (`PYCNI_SRIOV_VF_STATE`)."""

    LOCK_TIMEOUT = 10.0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def get(self, pf: str, vf: int) -> VfState:
        return self._state(self._read(), pf, vf)

    def set(self, pf: str, vf: int, settings: VfSettings) -> None:
        if settings.empty:
            return
        with lock.flock(self.lock_path, self.LOCK_TIMEOUT, what=f"VF state file {self.path}"):
            data = self._read()
            state = settings.applied_to(self._state(data, pf, vf))
            entry = data.setdefault(pf, {}).setdefault(str(vf), {})
            entry.update(state.model_dump())
            text = json.dumps(data, indent=1, sort_keys=True) + "\n"
            write_atomic(self.path, text.encode(), 0o600, durable=False)  # a PF forgets on reboot too

    def _read(self) -> dict[str, Any]:
        """The whole file (empty when there is none yet); malformed content is an error, never reset."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as err:
            raise InternalError(f"VF state file {self.path} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise InternalError(f'VF state file {self.path} must map PF names to {{"<VF index>": {{...}}}}')
        return data

    def _state(self, data: dict[str, Any], pf: str, vf: int) -> VfState:
        """One VF's entry (the defaults when absent); other PFs and VFs are not looked at."""
        vfs = data.get(pf, {})
        entry = vfs.get(str(vf), {}) if isinstance(vfs, dict) else None
        if not isinstance(entry, dict):
            raise InternalError(f'VF state file {self.path}: {pf} must map VF indexes to {{"mac": ..., ...}}')
        try:
            return VfState.model_validate({k: v for k, v in entry.items() if k in VfState.model_fields})
        except ValidationError as err:
            raise InternalError(
                describe_validation_error(err, f"VF state file {self.path}: entry {pf}/{vf}")
            ) from err


def vf_control(settings: Settings, host: Rtnl) -> VfControl:
    """The call's implementation: the state file when one is configured, else the PF over netlink."""
    if settings.vf_state_file:
        return FileVfControl(Path(settings.vf_state_file))
    from pycni.net.sriov_vf import NetlinkVfControl

    return NetlinkVfControl(host)

"""The `name#0,2-7` syntax of `pfNames` and `rootDevices` selectors: a PF, optionally limited to VF indexes.

Kept apart from the config model so the parser is testable on its own and the error text (which ends
up in the config error a user reads) is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A PF has at most this many VFs (`sriov_totalvfs` is 16 bits): a larger index is a typo, and
#: expanding `0-99999999` into a set would stall the plugin.
MAX_VF_INDEX = 0xFFFF


@dataclass(frozen=True)
class PfRef:
    """A PF (by netdev name or PCI address) and the VF indexes allowed on it (None: every VF)."""

    pf: str
    vf_indexes: frozenset[int] | None

    def allows(self, vf_index: int | None) -> bool:
        """A range restricts VFs only; a device that is not a VF matches only an unrestricted ref."""
        if self.vf_indexes is None:
            return True
        return vf_index is not None and vf_index in self.vf_indexes


def parse_pf_ref(text: str) -> PfRef:
    """Parses `ens1f0`, `ens1f0#3` or `ens1f0#0,2-7,9` (indexes 0-based, ranges inclusive)."""
    name, sep, spec = text.partition("#")
    name = name.strip()
    if not name:
        raise ValueError(f"{text!r}: empty PF name")
    if not sep:
        return PfRef(name, None)
    indexes: set[int] = set()
    for raw in spec.split(","):
        part = raw.strip()
        low_text, dash, high_text = part.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if dash else low
        except ValueError:
            raise ValueError(f"{text!r}: {part!r} is not an index or a range like 2-7") from None
        if low < 0 or high < low:
            raise ValueError(f"{text!r}: range {part!r} is empty or negative")
        if high > MAX_VF_INDEX:
            raise ValueError(f"{text!r}: VF index {high} is above {MAX_VF_INDEX}")
        indexes.update(range(low, high + 1))
    return PfRef(name, frozenset(indexes))

"""Running the distributions' firewall tools (`nft`, `iptables-restore`, `iptables-save`) and
removing what a listing found when other processes may be removing it too.

Every backend of `pycni.net.firewall` changes rules in atomic batches through these tools:
Python has no maintained nf_tables rule-building library, and the reference plugins go through
the same tools (go-iptables) or the same batches (knftables), so rules look alike either way.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pycni.cni.errors import InternalError

#: What the tools print when the table (or nftables chain) to list does not exist: nft reports
#: ENOENT, iptables-save names the table (or asks for a module to be loaded).
NFT_MISSING = re.compile(r"^Error: No such file or directory", re.MULTILINE)
IPTABLES_MISSING = re.compile(r"[Tt]able .*does not exist")

#: The iptables tools of each IP version: the rule tool, its batch loader and its dumper.
IPTABLES_TOOLS = {
    4: ("iptables", "iptables-restore", "iptables-save"),
    6: ("ip6tables", "ip6tables-restore", "ip6tables-save"),
}


def run(argv: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise failed(argv, proc)
    return proc.stdout


def listing(argv: list[str], missing: re.Pattern[str]) -> str | None:
    """A listing tool's stdout; None when it failed because the table or chain does not exist.

    Any other failure raises: reading it as "no rules" would let DEL and GC leave rules behind
    and report success.
    """
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return proc.stdout
    if missing.search(proc.stderr):
        return None
    raise failed(argv, proc)


def failed(argv: list[str], proc: subprocess.CompletedProcess[str]) -> InternalError:
    return InternalError(
        f"{argv[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}", f"exit {proc.returncode}"
    )


R = TypeVar("R", bound=Hashable)


def remove_all(find: Callable[[], Sequence[R]], remove: Callable[[Sequence[R]], None]) -> None:
    """Remove everything `find` lists, also when another process removes some of it meanwhile.

    Removal goes by what a listing found (nftables rule handles, iptables rule specs), in one
    atomic batch that fails whole when any part of it is already gone: a DEL racing a GC, or
    another DEL of the same attachment, removed it between our listing and our batch. Then
    list again and remove what is left. A failure after which nothing was removed by anyone
    else is a real one and raises.
    """
    doomed = list(find())
    while doomed:
        try:
            remove(doomed)
            return
        except InternalError:
            left = list(find())
            if not set(left) < set(doomed):
                raise
            doomed = left


def nft_saddr(rule: dict[str, Any]) -> str:
    """The address an nftables rule matches as its source (`ip saddr X`), from `nft -j` output."""
    for expr in rule.get("expr", []):
        match = expr.get("match") if isinstance(expr, dict) else None
        if not isinstance(match, dict):
            continue
        left = match.get("left")
        payload = left.get("payload") if isinstance(left, dict) else None
        right = match.get("right")
        if isinstance(payload, dict) and payload.get("field") == "saddr" and isinstance(right, str):
            return right
    return ""


# -- iptables ----------------------------------------------------------------------------------
def has_iptables() -> bool:
    return shutil.which(IPTABLES_TOOLS[4][1]) is not None


def nat_rules(version: int) -> list[IptRule] | None:
    """Every rule of the nat table of IP `version`; None without the tools or without a nat table."""
    save = shutil.which(IPTABLES_TOOLS[version][2])
    if save is None:
        return None
    text = listing([save, "-t", "nat"], IPTABLES_MISSING)
    if text is None:
        return None
    return [rule for line in text.splitlines() if (rule := IptRule.parse(line)) is not None]


def nat_chains(version: int) -> set[str]:
    """The user chains of the nat table (`:NAME - [0:0]` lines)."""
    save = shutil.which(IPTABLES_TOOLS[version][2])
    text = listing([save, "-t", "nat"], IPTABLES_MISSING) if save else None
    return {line[1:].split()[0] for line in (text or "").splitlines() if line.startswith(":")}


def restore(version: int, lines: list[str]) -> None:
    """One atomic `*nat` batch, added to (never replacing) what the table holds."""
    tool = IPTABLES_TOOLS[version][1]
    run([tool, "-w", "5", "--noflush"], "\n".join(["*nat", *lines, "COMMIT", ""]))


@dataclass(frozen=True)
class IptRule:
    """One `-A CHAIN ...` line of iptables-save, with the parts the backends match on."""

    chain: str
    spec: str
    source: str = ""
    dest: str = ""
    not_dest: str = ""
    comment: str = ""
    target: str = ""

    @classmethod
    def parse(cls, line: str) -> IptRule | None:
        if not line.startswith("-A "):
            return None
        chain, _, spec = line[3:].partition(" ")
        try:
            words = shlex.split(spec)
        except ValueError:
            return None
        found: dict[str, str] = {}
        negate = False
        for i, word in enumerate(words):
            value = words[i + 1] if i + 1 < len(words) else ""
            if word == "!":
                negate = True
                continue
            key = {"-s": "source", "-d": "dest", "--comment": "comment", "-j": "target"}.get(word)
            if key == "dest" and negate:
                key = "not_dest"
            if key:
                found[key] = value
            negate = False
        return cls(chain=chain, spec=spec, **found)

    @property
    def deletion(self) -> str:
        """The batch line that removes exactly this rule."""
        return f"-D {self.chain} {self.spec}"


def quote(text: str) -> str:
    """`text` as iptables-restore reads a quoted word (a comment with quotes inside)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

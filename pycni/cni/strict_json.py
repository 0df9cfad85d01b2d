"""The one strict JSON reader for what a plugin is handed: stdin, cached results, config files.

Standard library only (the runner decodes stdin before it knows whether the verb is VERSION).
Stricter than `json.loads`, as libcni's Go decoder is:
- UTF-8 only: no byte-order mark and no UTF-16/UTF-32 text (`json.loads` guesses those from
  bytes; Go does not);
- no `NaN`, `Infinity` or `-Infinity` (not JSON; Go refuses them), nor numbers that would
  overflow a float;
- nesting at most `MAX_DEPTH` arrays/objects deep. `json.loads` recurses once per level, and
  so do pydantic and our own walkers on the decoded value; a bound checked before parsing
  means no later stage can exhaust the stack. Real configs nest under ten levels (a multus
  delegate's `prevResult` route is about eight); 64 leaves ample room.

`text_problem` finds the strings that the rest of the system cannot hand to the kernel or
the filesystem: a NUL byte, or a lone surrogate (legal as a `\\ud800` escape in JSON, but not
encodable as UTF-8).
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from pycni.cni.errors import DecodingFailure

#: The deepest nesting of arrays and objects a document may have (the top-level object is 1).
MAX_DEPTH = 64

#: A JSON string token (the scanner's own rule), so brackets inside strings are not counted.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text`, ignoring brackets inside strings.

    Linear and recursion-free; on malformed text the count may be off, but never low enough
    to let the parser recurse past `MAX_DEPTH` before it finds the defect.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(_STEP[c] for c in brackets), default=0)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    """A number too large for a float (`1e400`) would become infinity: refused, as in Go."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def loads(raw: bytes | str, what: str) -> Any:
    """Decode one JSON document strictly; any defect is a DecodingFailure naming `what`."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as err:
        raise DecodingFailure(f"error parsing {what}: not UTF-8 text: {err}") from None
    if text.startswith("\ufeff"):
        raise DecodingFailure(f"error parsing {what}: a byte-order mark is not allowed")
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise DecodingFailure(f"error parsing {what}: nested {depth} levels deep, more than {MAX_DEPTH}")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as err:
        raise DecodingFailure(f"error parsing {what}: {err}") from None
    except RecursionError:  # pragma: no cover - the depth bound above keeps the parser shallow
        raise DecodingFailure(f"error parsing {what}: nested too deeply") from None


def text_problem(value: Any, path: str = "") -> str | None:
    """The first string (key or value) in decoded JSON that is not clean text, as `path: why`.

    Iterative, so it needs no depth bound of its own.
    """
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            why = _string_problem(item)
            if why:
                return f"{where or '(config)'}: {why}"
        elif isinstance(item, dict):
            children = []
            for key, sub in item.items():
                key_path = f"{where}.{key}" if where else str(key)
                why = _string_problem(key)
                if why:
                    return f"{key_path!r} (a key): {why}"
                children.append((key_path, sub))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", sub) for i, sub in reversed(list(enumerate(item))))
    return None


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character is not allowed"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (\\ud800-\\udfff) is not valid text"
    return None

"""Generic Kubernetes REST collections for the API server stand-in: the real paths
(`/api/v1/nodes/<name>`, `/apis/<group>/<version>[/namespaces/<ns>]/<plural>[/<name>]`) and JSON
shapes, with the semantics clients rely on: GET of one object or a list (with `fieldSelector`
equality terms), POST (a name from `generateName`, a uid, a resourceVersion), PUT with optimistic
concurrency (409 on a stale resourceVersion, 404 when gone), PUT of the `status` subresource
(only `status` taken, injected 409s), DELETE; per-collection validation
(422, as the real server's), and injected failures (503) for retry tests.
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>status))?)?$"
)
#: The server's limit on the base of a generated name (63 minus the 5 random characters).
GENERATED_BASE_MAX = 58

#: A validator returns the reason an object is invalid, or None.
Validator = Callable[[dict[str, Any]], "str | None"]
Reply = tuple[int, dict[str, Any]]


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code}  # fmt: skip


@dataclass
class Collection:
    api_version: str
    kind: str
    namespaced: bool
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    validate: Validator | None = None
    #: Writes of the status subresource still to refuse with 409 (as if someone wrote first).
    status_conflicts: int = 0


def field_value(obj: dict[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


class ObjectStore:
    """The collections a test registers; `handle` answers a request for one, or None for any other path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.collections: dict[tuple[str, str], Collection] = {}
        self._rv = 100
        #: Requests still to answer with 503 (the server overloaded or restarting).
        self.failures = 0

    def serve(self, api_version: str, plural: str, kind: str, *, namespaced: bool,
              validate: Validator | None = None) -> Collection:  # fmt: skip
        coll = Collection(api_version, kind, namespaced, validate=validate)
        self.collections[api_version, plural] = coll
        return coll

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def add(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Puts an object in place as the server would have stored it (tests' fixtures)."""
        with self.lock:
            coll = self.collections[obj["apiVersion"], plural]
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta["resourceVersion"] = self._next_rv()
            coll.objects[meta.get("namespace", ""), meta["name"]] = obj
            return copy.deepcopy(obj)

    def items(self, api_version: str, plural: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self.collections[api_version, plural].objects.values()))

    def remove(self, api_version: str, plural: str, name: str, namespace: str = "") -> None:
        with self.lock:
            self.collections[api_version, plural].objects.pop((namespace, name), None)

    # -- the REST side ---------------------------------------------------------------------------
    def handle(self, method: str, target: str, body: dict[str, Any] | None) -> Reply | None:
        path, _, query = target.partition("?")
        match = PATH.match(path)
        if match is None:
            return None
        api_version = "v1" if match["core"] else f"{match['group']}/{match['version']}"
        coll = self.collections.get((api_version, match["plural"]))
        if coll is None:
            return None
        with self.lock:
            if self.failures > 0:
                self.failures -= 1
                return 503, status(503, "ServiceUnavailable", "the server cannot handle the request now")
            key = (match["ns"] or "", match["name"] or "")
            if method == "GET":
                return self._get(coll, key) if match["name"] else self._list(coll, parse_qs(query))
            if method == "POST" and not match["name"] and body is not None:
                return self._create(coll, key[0], body)
            if method == "PUT" and match["sub"] and body is not None:
                return self._update_status(coll, key, body)
            if method == "PUT" and match["name"] and body is not None:
                return self._update(coll, key, body)
            if method == "DELETE" and match["name"]:
                return self._delete(coll, key)
        return 405, status(405, "MethodNotAllowed", f"{method} {path}")

    def _get(self, coll: Collection, key: tuple[str, str]) -> Reply:
        obj = coll.objects.get(key)
        if obj is None:
            return 404, status(404, "NotFound", f"{coll.kind} {key[1]!r} not found")
        return 200, copy.deepcopy(obj)

    def _list(self, coll: Collection, query: dict[str, list[str]]) -> Reply:
        terms = [t.split("=", 1) for s in query.get("fieldSelector", []) for t in s.split(",") if t]
        items = [
            copy.deepcopy(o) for o in coll.objects.values()
            if all(field_value(o, k) == v for k, v in terms)
        ]  # fmt: skip
        return 200, {"apiVersion": coll.api_version, "kind": f"{coll.kind}List",
                     "metadata": {"resourceVersion": str(self._rv)}, "items": items}  # fmt: skip

    def _create(self, coll: Collection, namespace: str, body: dict[str, Any]) -> Reply:
        meta = body.setdefault("metadata", {})
        if not meta.get("name"):
            base = meta.get("generateName") or ""
            if not base:
                return 422, status(422, "Invalid", "metadata.name or metadata.generateName is required")
            meta["name"] = base[:GENERATED_BASE_MAX] + secrets.token_hex(3)[:5]
        problem = coll.validate(body) if coll.validate else None
        if problem:
            return 422, status(422, "Invalid", f"{coll.kind} {meta['name']!r} is invalid: {problem}")
        key = (namespace, meta["name"])
        if key in coll.objects:
            return 409, status(409, "AlreadyExists", f"{coll.kind} {meta['name']!r} already exists")
        meta |= {"uid": str(uuid.uuid4()), "resourceVersion": self._next_rv(), "generation": 1}
        if namespace:
            meta["namespace"] = namespace
        coll.objects[key] = body
        return 201, copy.deepcopy(body)

    def _update(self, coll: Collection, key: tuple[str, str], body: dict[str, Any]) -> Reply:
        current = coll.objects.get(key)
        if current is None:
            return 404, status(404, "NotFound", f"{coll.kind} {key[1]!r} not found")
        meta = body.setdefault("metadata", {})
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            return 409, status(409, "Conflict", "the object has been modified; please apply your changes to "
                               "the latest version and try again")  # fmt: skip
        problem = coll.validate(body) if coll.validate else None
        if problem:
            return 422, status(422, "Invalid", f"{coll.kind} {key[1]!r} is invalid: {problem}")
        old = current["metadata"]
        meta |= {
            "uid": old["uid"],
            "resourceVersion": self._next_rv(),
            "generation": old.get("generation", 1) + 1,
        }
        coll.objects[key] = body
        return 200, copy.deepcopy(body)

    def _update_status(self, coll: Collection, key: tuple[str, str], body: dict[str, Any]) -> Reply:
        """PUT of `<name>/status`: only `status` changes (the server ignores the rest), at the
        resourceVersion the writer read; an injected conflict bumps the object as a rival write would."""
        current = coll.objects.get(key)
        if current is None:
            return 404, status(404, "NotFound", f"{coll.kind} {key[1]!r} not found")
        stale = body.get("metadata", {}).get("resourceVersion") != current["metadata"]["resourceVersion"]
        if coll.status_conflicts > 0 or stale:
            if not stale:
                coll.status_conflicts -= 1
                current["metadata"]["resourceVersion"] = self._next_rv()
            return 409, status(409, "Conflict", "the object has been modified; please apply your changes to "
                               "the latest version and try again")  # fmt: skip
        updated = {**copy.deepcopy(current), "status": body.get("status")}
        problem = coll.validate(updated) if coll.validate else None
        if problem:
            return 422, status(422, "Invalid", f"{coll.kind} {key[1]!r} is invalid: {problem}")
        updated["metadata"]["resourceVersion"] = self._next_rv()
        coll.objects[key] = updated
        return 200, copy.deepcopy(updated)

    def _delete(self, coll: Collection, key: tuple[str, str]) -> Reply:
        if coll.objects.pop(key, None) is None:
            return 404, status(404, "NotFound", f"{coll.kind} {key[1]!r} not found")
        return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

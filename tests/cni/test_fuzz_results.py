"""Fuzz the result models of every spec version, as they arrive in `prevResult` or from a delegate.

A random result of any version, valid or mutated, either parses or raises a CNIError; one that
parses renders to every version (0.1.0/0.2.0 may refuse a result without an address, as
libcni does), and what it renders parses back.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycni.cni.errors import CNIError, IncompatibleVersion
from pycni.cni.types import parse_result, render
from pycni.cni.version import SUPPORTED_VERSIONS
from tests.cni import fuzz_inputs
from tests.helpers.fuzz import fuzz_settings

pytestmark = pytest.mark.fuzz

OLD = ("0.1.0", "0.2.0")


def cidrs(family: Literal[4, 6]) -> st.SearchStrategy[str]:
    bits = 32 if family == 4 else 128
    return st.tuples(st.ip_addresses(v=family), st.integers(0, bits)).map(lambda t: f"{t[0]}/{t[1]}")


def addresses(family: Literal[4, 6]) -> st.SearchStrategy[str]:
    return st.ip_addresses(v=family).map(str)


def either(make: Any) -> st.SearchStrategy[Any]:
    families: list[Literal[4, 6]] = [4, 6]
    return st.sampled_from(families).flatmap(make)


dns = st.fixed_dictionaries(
    {},
    optional={
        "nameservers": st.lists(either(addresses), max_size=3),
        "domain": st.text(max_size=10),
        "search": st.lists(st.text(max_size=10), max_size=2),
        "options": st.lists(st.text(max_size=10), max_size=2),
    },
)


def route(family: Literal[4, 6], *, rich: bool) -> st.SearchStrategy[dict[str, Any]]:
    extra = (
        {k: st.integers(0, 2**31) for k in ("mtu", "advmss", "priority", "table")}
        | {"scope": st.integers(0, 255)}
        if rich
        else {}
    )
    return st.fixed_dictionaries({"dst": cidrs(family)}, optional={"gw": addresses(family), **extra})


def old_ipconfig(family: Literal[4, 6]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"ip": cidrs(family)},
        optional={"gateway": addresses(family), "routes": st.lists(route(family, rich=False), max_size=3)},
    )


def old_result(version: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"cniVersion": st.just(version)},
        optional={"ip4": old_ipconfig(4), "ip6": old_ipconfig(6), "dns": dns},
    )


def interface(*, rich: bool) -> st.SearchStrategy[dict[str, Any]]:
    extra = {
        "mtu": st.integers(0, 65535),
        "socketPath": st.text(max_size=20),
        "pciID": st.just("0000:03:02.1"),
    }
    return st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=15)},
        optional={
            "mac": st.just("0a:58:0a:01:02:03"),
            "sandbox": st.text(max_size=20),
            **(extra if rich else {}),
        },
    )


def ipconfig(family: Literal[4, 6], *, with_version: bool) -> st.SearchStrategy[dict[str, Any]]:
    extra = {"version": st.just(str(family))} if with_version else {}
    return st.fixed_dictionaries(
        {"address": cidrs(family)},
        optional={"gateway": addresses(family), "interface": st.integers(0, 3), **extra},
    )


def new_result(version: str) -> st.SearchStrategy[dict[str, Any]]:
    rich = version.startswith("1.")
    return st.fixed_dictionaries(
        {"cniVersion": st.just(version)},
        optional={
            "interfaces": st.lists(interface(rich=rich), max_size=3),
            "ips": st.lists(either(lambda f: ipconfig(f, with_version=not rich)), max_size=4),
            "routes": st.lists(either(lambda f: route(f, rich=True)), max_size=3),
            "dns": dns,
        },
    )


def results(version: str) -> st.SearchStrategy[dict[str, Any]]:
    return old_result(version) if version in OLD else new_result(version)


@st.composite
def raw_results(draw: st.DrawFn) -> dict[str, Any]:
    """A valid result of some version, often mutated (wrong types, dropped or added keys)."""
    raw = draw(st.sampled_from(SUPPORTED_VERSIONS).flatmap(results))
    return raw if draw(st.booleans()) else draw(fuzz_inputs.mutants(raw))


def has_address(raw_rendered: dict[str, Any]) -> bool:
    return bool(raw_rendered.get("ips"))


@fuzz_settings()
@given(raw=raw_results(), default_version=st.sampled_from(SUPPORTED_VERSIONS))
def test_a_result_parses_or_is_a_cni_error_and_renders_to_every_version(
    raw: dict[str, Any], default_version: str
) -> None:
    try:
        result = parse_result(raw, default_version)
    except CNIError as err:
        assert err.code in (1, 6), f"{type(err).__name__} {err.code}: {err.msg}"
        return
    newest = render(result, "1.1.0")
    for version in SUPPORTED_VERSIONS:
        try:
            out = render(result, version)
        except IncompatibleVersion:
            assert version in OLD and not has_address(newest), newest
            continue
        assert out["cniVersion"] == version
        again = parse_result(json.loads(json.dumps(out, allow_nan=False)), version)
        if version not in OLD:  # 0.3.0 and later carry everything a result holds but 1.1 extras
            assert [str(ip.address) for ip in again.ips] == [str(ip.address) for ip in result.ips]

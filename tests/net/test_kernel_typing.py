"""`mypy --strict` sees every kernel call made outside `pycni.net`.

pyroute2 is untyped (`ignore_missing_imports`), so a handle annotated as its `IPRoute`, or any
attribute forwarded to it, is `Any` to mypy and a wrong call passes silently. The handle is
therefore `Rtnl`, with no forwarding, and pyroute2 is imported only inside `pycni.net`; these
tests hold that, and show on a scratch file that a wrong call is a type error.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from pycni.net.nlsock import Rtnl

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pycni"
NET = PACKAGE / "net"
GENERATED = PACKAGE / "k8s" / "api"


def _product_modules_outside_net() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if not path.is_relative_to(NET) and not path.is_relative_to(GENERATED)
    ]


def _imports_pyroute2(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "pyroute2" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pyroute2":
            return True
    return False


def _calls_escape_hatch(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "pyroute2"
        for node in ast.walk(tree)
    )


def test_pyroute2_is_imported_and_reached_only_inside_pycni_net() -> None:
    offenders = []
    for path in _product_modules_outside_net():
        tree = ast.parse(path.read_text(), str(path))
        if _imports_pyroute2(tree) or _calls_escape_hatch(tree):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_handle_forwards_nothing() -> None:
    assert "__getattr__" not in vars(Rtnl) and "__getattribute__" not in vars(Rtnl)


def _mypy(tmp_path: Path, source: str) -> list[str]:
    """The error lines mypy --strict (the project's config) reports for `source`."""
    api = pytest.importorskip("mypy.api")
    scratch = tmp_path / "scratch.py"
    scratch.write_text(textwrap.dedent(source))
    args = [
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(tmp_path / "cache"),
        str(scratch),
    ]
    out, err, _ = api.run(args)
    assert not err, err
    return [line.split(": error: ", 1)[1] for line in out.splitlines() if ": error: " in line]


def test_a_wrong_kernel_call_is_a_type_error(tmp_path: Path) -> None:
    errors = _mypy(
        tmp_path,
        """
        from pycni.net import links, netns

        with netns.rtnl() as host:
            links.get_link(host, 5)
            host.link("get", ifname="lo")
            links.set_link(host, links.get_link(host, "lo"), mtu="1500")
        """,
    )
    assert len(errors) == 3, errors
    assert 'Argument 2 to "get_link" has incompatible type "int"' in errors[0]
    assert '"Rtnl" has no attribute "link"' in errors[1]
    assert 'Argument "mtu" to "set_link" has incompatible type "str"' in errors[2]


def test_the_right_calls_pass(tmp_path: Path) -> None:
    assert (
        _mypy(
            tmp_path,
            """
            from pycni.net import links, netns

            with netns.rtnl() as host:
                lo = links.get_link(host, "lo")
                links.set_link(host, lo, mtu=lo.mtu)
            """,
        )
        == []
    )


def test_what_an_iproute_annotation_would_hide(tmp_path: Path) -> None:
    """The reason for all this: through pyroute2's own class, the same mistake is invisible."""
    assert (
        _mypy(
            tmp_path,
            """
            from pyroute2 import IPRoute

            def rename(host: IPRoute) -> None:
                host.link("get", ifname=5, no_such_keyword=True)
                host.no_such_method()
            """,
        )
        == []
    )

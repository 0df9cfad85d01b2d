"""What an installed executable runs. Standard library only until a verb needs more."""

from __future__ import annotations


def main(plugin_type: str) -> None:
    from pycni.cni.skel import main as run_plugin

    run_plugin(plugin_type)

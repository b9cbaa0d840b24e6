"""The `hearth` command run in the calling process, as its console script runs it: what the tools
that wrap a node (cprofile_node, cpu_phases_node, census_node) share."""

from __future__ import annotations

import runpy
import sys

__all__ = ["run_hearth"]


def run_hearth(args: list[str]) -> None:
    """`hearth ARGS` here; returns however the command ends (its SystemExit included)."""
    sys.argv = ["hearth", *args]
    try:
        runpy.run_module("cli.main", run_name="__main__")
    except SystemExit:
        pass

"""The `hearth` command run in the calling process, as its console script runs it: what the tools
that wrap a node (cprofile_node, cpu_phases_node, census_node) share."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["run_hearth", "wrapper_main"]


def run_hearth(args: list[str]) -> None:
    """`hearth ARGS` here; returns however the command ends (its SystemExit included)."""
    sys.argv = ["hearth", *args]
    try:
        runpy.run_module("cli.main", run_name="__main__")
    except SystemExit:
        pass


def wrapper_main(module: str, run: Callable[[Path, list[str]], None]) -> None:
    """A wrapper's command line, `python -m MODULE OUT -- HEARTH-ARGS...`: `run(OUT, HEARTH-ARGS)`."""
    arguments = sys.argv[1:]
    if len(arguments) < 2 or arguments[1] != "--":
        raise SystemExit(f"usage: python -m {module} OUT -- HEARTH-ARGS...")
    run(Path(arguments[0]), arguments[2:])

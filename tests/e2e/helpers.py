"""Checks shared by the end-to-end tests, all over each validator's public RPC (more in devnet/scenarios.py)."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from cli.main import main
from devnet.manifest import ValidatorEntry
from devnet.network import Devnet
from devnet.processes import rpc
from devnet.scenarios import Commits, assert_one_chain

__all__ = ["assert_one_chain", "call", "check_conservation", "hearth", "hearth_committed", "height", "wait_for_growth"]

RPC_TIMEOUT_S = 5.0


def call(entry: ValidatorEntry, method: str, **params: Any) -> Any:
    return rpc(entry, method, RPC_TIMEOUT_S, **params)


def height(entry: ValidatorEntry) -> int:
    return int(call(entry, "status")["height"])


def wait_for_growth(net: Devnet, names: list[str], blocks: int, timeout_s: float) -> None:
    """Wait until every named node is `blocks` past the highest of them now."""
    Commits(tuple(names), blocks, timeout_s=timeout_s).run(net)


def hearth(net: Devnet, *args: str, via: str | None = None) -> Any:
    """Run `hearth ARGS... --json` against the devnet's keyring and validator `via`; the parsed output."""
    import json

    result = CliRunner().invoke(main, [*args, "--json"], env=net.manifest.environment(via), catch_exceptions=False)
    assert result.exit_code == 0, f"hearth {' '.join(args)}: exit {result.exit_code}: {result.output}"
    return json.loads(result.output)


def hearth_committed(net: Devnet, *args: str, via: str, read_on: str, timeout_s: float = 20.0) -> Any:
    """`hearth ARGS... --wait` sent to `via`, then wait until validator `read_on` has committed its
    block too: `--wait` answers when `via` commits, and another validator may be a moment behind."""
    outcome = hearth(net, *args, "--wait", via=via)
    net.wait_for_height(outcome["height"], timeout_s, [read_on])
    return outcome


def check_conservation(supply: dict[str, int]) -> None:
    parts = supply["circulating"] + supply["commons_pool"] + supply["ubi_reserve"] + supply["bonded"]
    assert parts == supply["total"], f"conservation broken at height {supply['height']}: {supply}"

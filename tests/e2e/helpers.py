"""Checks shared by the end-to-end tests, all over each validator's public RPC."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from cli.main import main
from cli.rpc_client import RpcClientError
from devnet.manifest import ValidatorEntry
from devnet.network import Devnet
from devnet.processes import poll_until, rpc

RPC_TIMEOUT_S = 5.0


def call(entry: ValidatorEntry, method: str, **params: Any) -> Any:
    return rpc(entry, method, RPC_TIMEOUT_S, **params)


def height(entry: ValidatorEntry) -> int:
    return int(call(entry, "status")["height"])


def heights(net: Devnet, names: list[str] | None = None) -> dict[str, int]:
    return {e.name: height(e) for e in net.manifest.validators if names is None or e.name in names}


def chain(entry: ValidatorEntry, first: int, last: int) -> list[tuple[str, str]]:
    """(block hash, state root) at each height first..last, as `entry` serves them."""
    out = []
    for h in range(first, last + 1):
        block = call(entry, "block", height=h)
        assert block is not None, f"{entry.name} has no block {h}"
        out.append((block["header"]["hash"], block["header"]["state_root"]))
    return out


def assert_one_chain(net: Devnet, names: list[str] | None = None, first: int = 1) -> int:
    """Identical block hashes and state roots at every height every named node has; the top height compared."""
    entries = [e for e in net.reload().validators if names is None or e.name in names]
    top = min(height(e) for e in entries)
    reference = chain(entries[0], first, top)
    for entry in entries[1:]:
        assert chain(entry, first, top) == reference, f"{entry.name} and {entries[0].name} differ below height {top}"
    return top


def wait_for_growth(net: Devnet, names: list[str], blocks: int, timeout_s: float) -> int:
    """Wait until every named node is `blocks` past the highest of them now; that target."""
    target = max(heights(net, names).values()) + blocks
    net.wait_for_height(target, timeout_s, names)
    return target


def hearth(net: Devnet, *args: str, via: str | None = None) -> Any:
    """Run `hearth ARGS... --json` against the devnet's keyring and validator `via`; the parsed output."""
    import json

    result = CliRunner().invoke(main, [*args, "--json"], env=net.manifest.environment(via), catch_exceptions=False)
    assert result.exit_code == 0, f"hearth {' '.join(args)}: exit {result.exit_code}: {result.output}"
    return json.loads(result.output)


def answers(entry: ValidatorEntry) -> bool:
    try:
        call(entry, "status")
    except RpcClientError:
        return False
    return True


def wait_answering(entries: list[ValidatorEntry], timeout_s: float) -> None:
    poll_until(lambda: all(answers(e) for e in entries), timeout_s, "the validators' RPC to answer")


def check_conservation(supply: dict[str, int]) -> None:
    parts = supply["circulating"] + supply["commons_pool"] + supply["ubi_reserve"] + supply["bonded"]
    assert parts == supply["total"], f"conservation broken at height {supply['height']}: {supply}"

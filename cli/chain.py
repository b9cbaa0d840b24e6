"""`hearth status` and `hearth chain supply|params|block|validators`: what the chain looks like."""

from __future__ import annotations

import click

from cli.errors import CliError
from cli.output import emit, format_coins, format_time_ms, short, table
from cli.settings import Settings, hearth_command
from ledger.constants import RATE_SCALE


@click.command("status")
@hearth_command()
def status(settings: Settings) -> None:
    """The node's view of the chain: head, time, period, state root, sync and peers."""
    s = settings.client().call("status")
    rows = [
        ("chain", s["chain_id"]),
        ("height", str(s["height"])),
        ("block hash", s["block_hash"] or "-"),
        ("block time", format_time_ms(s["block_time_ms"])),
        ("period", str(s["period"])),
        ("state root", s["state_root"]),
        ("syncing", "yes" if s["syncing"] else "no"),
        ("peers", str(s["peers"])),
        ("validator", "yes" if s["is_validator"] else "no"),
    ]
    emit(settings.as_json, s, table(rows))


@click.group("chain")
def chain() -> None:
    """The supply, the parameters, blocks and validators."""


@chain.command("supply")
@hearth_command()
def chain_supply(settings: Settings) -> None:
    """The fixed supply and where every unit of it is."""
    s = settings.client().call("supply")
    coins = lambda name: f"{format_coins(s[name]):>22} coins"  # noqa: E731
    rows = [
        ("total", coins("total")),
        ("  circulating", coins("circulating")),
        ("  commons pool", coins("commons_pool")),
        ("  UBI reserve", coins("ubi_reserve")),
        ("  bonded", coins("bonded")),
        ("demurrage collected", coins("demurrage_collected")),
        ("UBI paid", coins("ubi_paid")),
        ("slashed", coins("slashed")),
        ("members", str(s["members"])),
        ("height", str(s["height"])),
    ]
    emit(settings.as_json, s, table(rows))


def format_rate(rate: int) -> str:
    return f"{rate * 100 / RATE_SCALE:.6g}%"


@chain.command("params")
@hearth_command()
def chain_params(settings: Settings) -> None:
    """The genesis parameters and the ledger's limits."""
    p = settings.client().call("params")
    rows = [
        ("chain", p["chain_id"]),
        ("genesis time", format_time_ms(p["genesis_time_ms"])),
        ("period", f"{p['period_seconds']} s"),
        ("demurrage", f"{format_rate(p['demurrage_rate'])} per period"),
        ("UBI", f"{format_rate(p['ubi_fraction'])} of the commons pool per period, shared equally"),
        ("slashing", f"{format_rate(p['slash_fraction'])} of a misbehaving validator's stake"),
    ]
    rows += [(k, str(v)) for k, v in sorted(p.items()) if k not in ("chain_id", "genesis_time_ms", "period_seconds", "demurrage_rate", "ubi_fraction", "slash_fraction")]
    emit(settings.as_json, p, table(rows))


@chain.command("block")
@click.argument("height", required=False, type=click.IntRange(0))
@hearth_command()
def chain_block(settings: Settings, height: int | None) -> None:
    """Block HEIGHT (default: the head): header, transactions, commit certificate."""
    block = settings.client().call("block", height=height)
    if block is None:
        raise CliError(f"this node has no block at height {height}", "see `hearth status` for the head")
    header = block["header"]
    rows = [(k, str(v)) for k, v in header.items()]
    rows.append(("transactions", str(len(block["txs"]))))
    signatures = block.get("commit", {}).get("signatures") if isinstance(block.get("commit"), dict) else None
    if signatures is not None:
        rows.append(("commit", f"{len(signatures)} signatures"))
    emit(settings.as_json, block, table(rows))


@chain.command("validators")
@click.option("--height", type=click.IntRange(0), help="At this height (default: the head).")
@hearth_command()
def chain_validators(settings: Settings, height: int | None) -> None:
    """The validator set and its voting power."""
    answer = settings.client().call("validators", height=height)
    if answer is None:
        raise CliError(f"this node does not know the validators at height {height}")
    lines = [f"{v['name'][:20]:20}  {short(v['address'], 16)}  power {v['power']:>8}  stake {format_coins(v['stake'])}" for v in answer["validators"]]
    emit(settings.as_json, answer, [f"validators at height {answer['height']}:", *lines])


@chain.command("node")
@click.argument("node_id", metavar="ID")
@hearth_command()
def chain_node(settings: Settings, node_id: str) -> None:
    """City-state node ID: its council, members, quotas and housing."""
    n = settings.client().call("node", id=node_id)
    council = n["council"]
    rows = [
        ("node", f"{n['id']} ({n['name']})" if n["name"] else n["id"]),
        ("council", f"{council['threshold']} of {len(council['keys'])} keys, account {council['address']}"),
        *[("  key", k) for k in council["keys"]],
        ("members", str(n["member_count"])),
        ("housing fee", f"{format_coins(n['housing_fee'])} coins per period (from UBI)"),
        ("housing", f"{n['waiting']} waiting, {n['vacant']} vacant"),
    ]
    for rid, pool in sorted(n["quotas"].items()):
        rows.append((f"quota {rid}", f"cap {pool['cap']} {pool['unit']}, allowance {pool['allowance']} each, consumed {pool['consumed']}"))
    emit(settings.as_json, n, table(rows))

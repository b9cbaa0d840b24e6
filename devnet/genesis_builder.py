"""The devnet's genesis: equal-stake validators, two city-state nodes, resources, housing, demo members.

Pure: `build_genesis_document` takes every key as an argument and returns the JSON document, which
`ledger.genesis.Genesis.from_document` then checks like any other genesis. The keys themselves are
made by `make_demo_keys` (fresh each devnet; the names are fixed, see `DEMO_KEY_NAMES`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.constants import RATE_SCALE, UNITS_PER_COIN
from ledger.crypto import Keypair
from ledger.genesis import Genesis

__all__ = [
    "CITY_NODES",
    "DEMO_KEY_NAMES",
    "DEMO_MEMBERS",
    "DevnetEconomy",
    "RESOURCES",
    "build_genesis_document",
    "make_demo_keys",
]

DEMO_MEMBERS: dict[str, str] = {"alice": "north", "bob": "north", "carol": "south", "dave": "south"}
"""Demo member key name -> the city-state node they belong to."""

CITY_NODES: tuple[str, ...] = ("north", "south")
COUNCIL_SIZE = 3
COUNCIL_THRESHOLD = 2

RESOURCES: tuple[dict[str, Any], ...] = (
    {"id": "water", "unit": "litre", "cap_min": 0, "cap_max": 10**9, "floor_percent": 50, "ceiling_percent": 150},
    {"id": "energy", "unit": "kWh", "cap_min": 100, "cap_max": 10**6, "floor_percent": 20, "ceiling_percent": 300},
)
NODE_CAPS: dict[str, int] = {"water": 120_000, "energy": 9_000}
"""Each node's cap per resource and period."""

HOUSING_RULES: dict[str, Any] = {
    "fee_max": 10 * UNITS_PER_COIN,
    "need_flags": ["disability", "children", "elderly"],
    "modification_kinds": ["extension", "accessibility"],
    "area_delta_max": 20,
    "area_total_max": 40,
}
HOUSING_UNITS: dict[str, tuple[tuple[str, int], ...]] = {
    "north": (("north-1", 2), ("north-2", 4)),
    "south": (("south-1", 3), ("south-2", 1)),
}
"""Per node: (unit id, capacity in people)."""

DEMO_KEY_NAMES: dict[str, tuple[str, ...]] = {
    "members": tuple(DEMO_MEMBERS),
    "councils": tuple(f"{node}-council-{i}" for node in CITY_NODES for i in range(1, COUNCIL_SIZE + 1)),
    "providers": tuple(f"{r['id']}-provider" for r in RESOURCES),
}
"""The demo keyring's key names by role; every one is a key file in the devnet keyring."""


@dataclass(frozen=True)
class DevnetEconomy:
    """Amounts and rates of a devnet genesis (base units; rates over RATE_SCALE per period)."""

    period_seconds: int = 30
    validator_stake: int = 1_000 * UNITS_PER_COIN
    member_balance: int = 1_000 * UNITS_PER_COIN
    commons_pool: int = 10_000 * UNITS_PER_COIN
    demurrage_rate: int = RATE_SCALE // 100
    """1% of an idle balance per period: visible within a few periods."""
    ubi_fraction: int = RATE_SCALE // 10
    slash_fraction: int = RATE_SCALE // 20


def make_demo_keys() -> dict[str, Keypair]:
    """A fresh keypair for every name in DEMO_KEY_NAMES."""
    return {name: Keypair.generate() for names in DEMO_KEY_NAMES.values() for name in names}


def build_genesis_document(
    chain_id: str,
    genesis_time_ms: int,
    validators: Sequence[tuple[str, bytes]],
    demo_keys: Mapping[str, bytes],
    economy: DevnetEconomy = DevnetEconomy(),
    extra_accounts: Sequence[tuple[bytes, int]] = (),
) -> dict[str, Any]:
    """The genesis document; `validators` are (name, address), `demo_keys` maps every name of
    DEMO_KEY_NAMES to its address; `extra_accounts` are further funded (address, balance) accounts
    (the network benchmark's 10,000 senders), added to the total supply.
    Raises `ledger.errors.Rejected` if the ledger would refuse it."""
    if not validators:
        raise ValueError("a devnet needs at least one validator")
    missing = [n for names in DEMO_KEY_NAMES.values() for n in names if n not in demo_keys]
    if missing:
        raise ValueError(f"demo keys missing: {missing}")
    members = [demo_keys[name] for name in DEMO_MEMBERS]
    accounts = [{"address": address.hex(), "balance": economy.member_balance} for address in members]
    accounts += [{"address": address.hex(), "balance": balance} for address, balance in extra_accounts]
    doc: dict[str, Any] = {
        "chain_id": chain_id,
        "genesis_time_ms": genesis_time_ms,
        "params": {
            "period_seconds": economy.period_seconds,
            "demurrage_rate": economy.demurrage_rate,
            "ubi_fraction": economy.ubi_fraction,
            "slash_fraction": economy.slash_fraction,
        },
        "total_supply": economy.member_balance * len(members)
        + sum(balance for _, balance in extra_accounts)
        + economy.commons_pool + economy.validator_stake * len(validators),
        "commons_pool": economy.commons_pool,
        "accounts": accounts,
        "validators": [{"address": address.hex(), "name": name, "stake": economy.validator_stake} for name, address in validators],
        "resources": [dict(r) for r in RESOURCES],
        "housing": dict(HOUSING_RULES),
        "nodes": [_node_document(node, demo_keys) for node in CITY_NODES],
    }
    Genesis.from_document(doc)  # the ledger's own checks, so a devnet never starts from a bad genesis
    return doc


def _node_document(node: str, demo_keys: Mapping[str, bytes]) -> dict[str, Any]:
    return {
        "id": node,
        "name": f"{node.capitalize()} City",
        "council": {
            "keys": [demo_keys[f"{node}-council-{i}"].hex() for i in range(1, COUNCIL_SIZE + 1)],
            "threshold": COUNCIL_THRESHOLD,
        },
        "members": [demo_keys[name].hex() for name, home in DEMO_MEMBERS.items() if home == node],
        "caps": dict(NODE_CAPS),
        "providers": [{"resource": r["id"], "address": demo_keys[f"{r['id']}-provider"].hex()} for r in RESOURCES],
        "units": [{"id": unit, "capacity": capacity} for unit, capacity in HOUSING_UNITS[node]],
    }

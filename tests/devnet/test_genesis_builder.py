"""devnet/genesis_builder.py: the devnet genesis is one the ledger accepts, with everything the issue lists."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from devnet.genesis_builder import (
    CITY_NODES,
    DEMO_KEY_NAMES,
    DEMO_MEMBERS,
    DevnetEconomy,
    build_genesis_document,
    make_demo_keys,
)
from ledger import Genesis, LedgerDB, MemoryStore
from ledger.authorization import get_node
from ledger.crypto import Keypair
from ledger.housing import get_unit
from ledger.quotas import require_provider


def _document(validators: int = 4, economy: DevnetEconomy = DevnetEconomy()) -> tuple[dict[str, Any], dict[str, Keypair], list[Keypair]]:
    demo = make_demo_keys()
    vals = [Keypair.generate() for _ in range(validators)]
    doc = build_genesis_document(
        "hearth-devnet-test", 1_000, [(f"v{i}", k.public_key) for i, k in enumerate(vals, 1)], {n: k.address for n, k in demo.items()}, economy
    )
    return doc, demo, vals


def test_equal_stake_validators_and_the_supply_adds_up() -> None:
    doc, _, vals = _document(validators=4)
    genesis = Genesis.from_document(doc)
    assert [a for a, _, _ in genesis.validators] == [k.public_key for k in vals]
    assert len({stake for _, _, stake in genesis.validators}) == 1
    allocated = sum(b for _, b in genesis.accounts) + genesis.commons_pool + sum(s for _, _, s in genesis.validators)
    assert allocated == genesis.total_supply


def test_two_nodes_with_councils_resources_providers_housing_and_members() -> None:
    doc, demo, _ = _document()
    genesis = Genesis.from_document(doc)
    view = LedgerDB(MemoryStore(), genesis).view()
    assert len(CITY_NODES) >= 2
    for node_id in CITY_NODES:
        node = get_node(view, node_id)
        assert node.threshold == 2
        assert set(node.council_keys) == {demo[f"{node_id}-council-{i}"].address for i in (1, 2, 3)}
        for resource in ("water", "energy"):
            require_provider(view, node_id, resource, demo[f"{resource}-provider"].address)  # raises if not
        units = [u["id"] for n in doc["nodes"] if n["id"] == node_id for u in n["units"]]
        assert units and all(get_unit(view, node_id, u).capacity >= 1 for u in units)
    assert {r for r, _ in genesis.resources} == {"water", "energy"}
    for name, node_id in DEMO_MEMBERS.items():
        member = view.get_member(demo[name].address)
        assert member is not None and member.node == node_id
        account = view.get_account(demo[name].address)
        assert account is not None and account.balance == DevnetEconomy().member_balance


def test_period_seconds_is_taken_from_the_economy() -> None:
    doc, _, _ = _document(economy=replace(DevnetEconomy(), period_seconds=3))
    assert Genesis.from_document(doc).params.period_seconds == 3


def test_every_demo_key_name_is_needed() -> None:
    demo = {n: k.address for n, k in make_demo_keys().items()}
    assert set(demo) == {n for names in DEMO_KEY_NAMES.values() for n in names}
    del demo["alice"]
    with pytest.raises(ValueError, match="alice"):
        build_genesis_document("c", 0, [("v1", Keypair.generate().public_key)], demo)


def test_no_validators_is_refused() -> None:
    demo = {n: k.address for n, k in make_demo_keys().items()}
    with pytest.raises(ValueError):
        build_genesis_document("c", 0, [], demo)

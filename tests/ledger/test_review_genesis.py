"""Review: a malformed genesis gives GENESIS_INVALID, never another exception (specs/monetary.md §2)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from ledger import Genesis, LedgerDB, MemoryStore, Rejected
from ledger.errors import Code
from tests.ledger.helpers import community_genesis


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "accounts not a list": lambda d: d.update(accounts=5),
    "accounts null": lambda d: d.update(accounts=None),
    "validators not a list": lambda d: d.update(validators=7),
    "validators null": lambda d: d.update(validators=None),
    "a float anywhere": lambda d: d.update(note=1.5),
    "an integer past 64 bits anywhere": lambda d: d.update(note=2**70),
    "genesis_time_ms past 64 bits": lambda d: d.update(genesis_time_ms=2**70),
    "period_seconds past 64 bits": lambda d: d["params"].update(period_seconds=2**70),
    "nesting too deep": lambda d: d.update(note=_nested(40)),
    "lone surrogate in a resource unit": lambda d: d["resources"][0].update(unit="\ud800"),
    "lone surrogate in a node name": lambda d: d["nodes"][0].update(name="\ud800"),
    "lone surrogate in an unused field": lambda d: d.update(note="\udfff"),
}


def _check_invalid(make: Callable[[], Genesis]) -> None:
    with pytest.raises(Rejected) as err:
        genesis = make()
        LedgerDB(MemoryStore(), genesis)  # reached only if parsing wrongly accepted it
    assert err.value.code is Code.GENESIS_INVALID


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_malformed_document_is_genesis_invalid(name: str) -> None:
    doc = copy.deepcopy(community_genesis().document)
    MUTATIONS[name](doc)
    _check_invalid(lambda: Genesis.from_document(doc))


@pytest.mark.parametrize(
    "text",
    [
        '{"chain_id": ' + "1" * 5000 + "}",  # more digits than Python converts: ValueError, not JSONDecodeError
        "[" * 100_000 + "]" * 100_000,  # RecursionError in the JSON decoder
        "",
        "[1, 2",
        b"\xff\xfe\x00",
    ],
    ids=["too-many-digits", "deep-json", "empty", "truncated", "bad-bytes"],
)
def test_malformed_json_is_genesis_invalid(text: Any) -> None:
    _check_invalid(lambda: Genesis.from_json(text))


def test_file_that_is_not_utf8_is_genesis_invalid(tmp_path: Any) -> None:
    path = tmp_path / "genesis.json"
    path.write_bytes(b'{"chain_id": "\xff"}')
    _check_invalid(lambda: Genesis.from_file(str(path)))


def test_unit_attributes_with_spaces_are_not_a_hash() -> None:
    doc = copy.deepcopy(community_genesis().document)
    doc["nodes"][0]["units"] = [{"id": "u1", "capacity": 2, "attributes": "00 " * 21 + "0"}]
    _check_invalid(lambda: Genesis.from_document(doc))
    doc["nodes"][0]["units"] = [{"id": "u1", "capacity": 2, "attributes": "0000 " * 12 + "0000"}]
    _check_invalid(lambda: Genesis.from_document(doc))


def test_valid_genesis_still_round_trips() -> None:
    genesis = community_genesis()
    again = Genesis.from_json(json.dumps(genesis.document))
    assert again.hash == genesis.hash
    LedgerDB(MemoryStore(), again)


def test_genesis_with_more_voting_validators_than_a_set_holds_is_invalid() -> None:
    from consensus.constants import MAX_VALIDATORS
    from ledger.constants import UNITS_PER_COIN
    from ledger.genesis import MAX_GENESIS_VALIDATORS

    assert MAX_GENESIS_VALIDATORS == MAX_VALIDATORS
    doc = copy.deepcopy(community_genesis().document)
    stakes = [UNITS_PER_COIN] * MAX_VALIDATORS + [UNITS_PER_COIN - 1] * 3  # powerless ones do not count
    doc["validators"] = [{"address": (i + 1).to_bytes(32, "big").hex(), "stake": s} for i, s in enumerate(stakes)]
    doc["total_supply"] += sum(stakes)
    Genesis.from_document(doc)  # a full set is fine
    doc["validators"].append({"address": (10_000).to_bytes(32, "big").hex(), "stake": UNITS_PER_COIN})
    doc["total_supply"] += UNITS_PER_COIN
    _check_invalid(lambda: Genesis.from_document(doc))


def test_genesis_whose_validators_all_lack_voting_power_is_invalid() -> None:
    from ledger.constants import UNITS_PER_COIN

    doc = copy.deepcopy(community_genesis().document)
    doc["validators"] = [{"address": (i + 1).to_bytes(32, "big").hex(), "stake": UNITS_PER_COIN - 1} for i in range(3)]
    doc["total_supply"] += 3 * (UNITS_PER_COIN - 1)
    _check_invalid(lambda: Genesis.from_document(doc))
    doc["validators"][0]["stake"] += 1
    doc["total_supply"] += 1
    Genesis.from_document(doc)

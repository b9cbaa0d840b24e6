"""Review fuzz: random well-formed transactions of every type, with random fields (edge values
included) and random signers, never raise anything but Rejected; blocks with slashes keep the
conservation identity and the stored balances add up to `circulating`; two ledgers fed the same
blocks agree on the state root."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import BlockInput, LedgerDB, MemoryStore, Rejected
from ledger.constants import MAX_AMOUNT
from ledger.records import Account
from ledger.state import STATE_PREFIX
from ledger.transition import TX_PROCESSORS, process_block_header, process_slash, process_tx
from ledger.tx import encode_body, sign_tx
from tests.ledger.helpers import (
    CHAIN_ID,
    ENERGY,
    HOUSING,
    NODE_COUNCILS,
    PERIOD_MS,
    WATER,
    addr,
    council_address,
    key,
    make_genesis,
    node_doc,
)

PEOPLE = (1, 2, 3, 4, 5, 6)
VALIDATORS = (30, 31, 32)
KEYS = (*PEOPLE, *VALIDATORS, 50, 51, 900, 901, 902, 910, 911)
TYPES = sorted(TX_PROCESSORS)

amount = st.sampled_from([1, 2, 7, 99, 1_000, 10**6, 3 * 10**6, 10**9, MAX_AMOUNT])
small = st.sampled_from([0, 1, 2, 3, 16, 17, 255])
ids = st.sampled_from(["north", "south", "water", "energy", "a", "b", "c", "extension", "north", "south", "water", "a", "b", "nowhere", "gold", "z", "pool"])
address = st.one_of(
    st.sampled_from(PEOPLE).map(addr), st.sampled_from(PEOPLE).map(addr), st.sampled_from(KEYS).map(addr),
    st.sampled_from(["north", "south"]).map(council_address), st.just(bytes(32)),
)

FIELDS: dict[str, Any] = {
    "to": address,
    "amount": amount,
    "memo": st.just("m"),
    "node": ids,
    "member": address,
    "housing_fee": st.sampled_from([0, 1, 10_000, 10_001]),
    "area_delta_max": st.sampled_from([0, 5, 20, 21]),
    "area_total_max": st.sampled_from([0, 5, 40, 41]),
    "resource": ids,
    "provider": address,
    "cap": st.sampled_from([0, 100, 10**6, 10**9, 10**9 + 1]),
    "price": st.sampled_from([0, 1, 10**6, MAX_AMOUNT]),
    "unit": ids,
    "capacity": small.filter(lambda v: v >= 1),
    "attributes": st.just(bytes(32)),
    "household": small.filter(lambda v: v >= 1),
    "needs": small,
    "coholder": address,
    "kind": ids,
    "area_delta": st.sampled_from([-41, -20, -1, 0, 1, 20, 21]),
    "validator": address,
    "stake": amount,
    "name": st.just("v"),
}


@st.composite
def raw_tx(draw: Any) -> tuple[str, Any, list[int], dict[str, Any]]:
    """A transaction type, its sender, its signers (mostly the ones it needs) and its fields."""
    from ledger.tx import TX_SCHEMAS

    tx_type = draw(st.sampled_from(TYPES))
    council = "node" in TX_SCHEMAS[tx_type] and tx_type not in ("housing_release", "housing_coholder_add", "housing_coholder_remove", "housing_modify")
    fields = {}
    for name, field in TX_SCHEMAS[tx_type].items():
        if field.required or draw(st.booleans()):
            fields[name] = draw(FIELDS[name])
    if council and draw(st.integers(0, 4)):
        fields["node"] = sender = draw(st.sampled_from(["north", "south"]))
    else:
        sender = draw(st.one_of(st.sampled_from(KEYS), st.sampled_from(["north", "south"])))
    mode = draw(st.sampled_from(["right"] * 6 + ["random"]))
    if mode == "random":
        signers = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True))
    elif isinstance(sender, str):
        signers = list(NODE_COUNCILS[sender][: draw(st.integers(1, 3))])
    else:
        signers = [sender]
        if tx_type == "validator_bond":
            fields["validator"] = addr(sender)
            signers += list(VALIDATORS[: draw(st.integers(1, 3))])
        other = {addr(i): i for i in KEYS}.get(fields.get("to", fields.get("coholder", b"")))
        if other is not None and tx_type in ("quota_trade", "housing_coholder_add") and draw(st.booleans()):
            signers.append(other)
    return tx_type, sender, sorted(set(signers)), fields


def genesis() -> Any:
    providers = (("water", 50), ("energy", 51))
    return make_genesis(
        {i: 5 * 10**6 for i in (*PEOPLE, *VALIDATORS)},
        validators={v: 2 * 10**6 for v in VALIDATORS},
        resources=[WATER, ENERGY],
        housing=HOUSING,
        nodes=[
            node_doc("north", members=(1, 2, 3), caps={"water": 1_000, "energy": 600}, providers=providers, units=(("a", 2), ("b", 1)), housing_fee=50),
            node_doc("south", members=(4, 5), providers=providers, units=(("a", 3),)),
        ],
    )


@settings(max_examples=int(os.environ.get('REVIEW_FUZZ_EXAMPLES', '60')), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    blocks=st.lists(
        st.tuples(st.lists(raw_tx(), max_size=8), st.sampled_from([1, PERIOD_MS, 3 * PERIOD_MS]), st.lists(st.sampled_from(VALIDATORS), max_size=1)),
        min_size=1,
        max_size=5,
    )
)
def test_random_transactions_raise_only_rejected_and_conserve(blocks: list[Any]) -> None:
    g = genesis()
    db, replica = LedgerDB(MemoryStore(), g), LedgerDB(MemoryStore(), g)
    for txs, advance, slashes in blocks:
        head = db.head
        block = BlockInput(head.height + 1, head.time_ms + advance, (), tuple(addr(v) for v in slashes))
        building = db.view()
        process_block_header(building, block)
        for address_ in block.slashes:
            process_slash(building, address_)
        accepted: list[bytes] = []
        for tx_type, sender, signers, fields in txs:
            sender_address = council_address(sender) if isinstance(sender, str) else addr(sender)
            account = building.get_account(sender_address)
            nonce = 0 if account is None else account.nonce
            raw = sign_tx(CHAIN_ID, encode_body(tx_type, CHAIN_ID, sender_address, nonce, **fields), [key(i) for i in signers])
            overlay = building.child()
            try:
                process_tx(overlay, raw)
            except Rejected:
                continue
            overlay.merge_into_parent()
            accepted.append(raw)
        final = BlockInput(block.height, block.time_ms, tuple(accepted), block.slashes)
        for ledger in (db, replica):
            ledger.commit(ledger.execute(final))
        assert db.state_root == replica.state_root
        t = db.totals()
        assert t.circulating + t.commons_pool + t.ubi_reserve + t.bonded == t.total_supply
        assert min(t.circulating, t.commons_pool, t.ubi_reserve, t.bonded) >= 0
        balances = [db.committed.get(k[len(STATE_PREFIX) :]).balance for k, _ in db.store.iterate(STATE_PREFIX + Account.PREFIX)]
        assert sum(balances) == t.circulating and min(balances) >= 0
        assert bonded_stake(db) == t.bonded


def bonded_stake(db: LedgerDB) -> int:
    """The stake the state holds apart from accounts: validators' and (where the ledger has them)
    stake waiting to unbond."""
    total = 0
    for k, _ in db.store.iterate(STATE_PREFIX):
        record = db.committed.get(k[len(STATE_PREFIX) :])
        if type(record).__name__ in ("Validator", "Unbonding"):
            total += record.stake
    return total

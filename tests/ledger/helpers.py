"""Builders shared by ledger tests: a genesis, keys, signed transactions, a ledger, blocks.

`make_genesis` and `member_add_tx`/`member_remove_tx` are the only places tests describe genesis
and membership transactions, so a change of those rules is made here once.
"""

from __future__ import annotations

from typing import Any

from ledger import BlockInput, Genesis, LedgerDB, MemoryStore, make_tx
from ledger.constants import RATE_SCALE
from ledger.crypto import Keypair

CHAIN_ID = "hearth-test"
PERIOD_SECONDS = 10
PERIOD_MS = PERIOD_SECONDS * 1000


def key(i: int) -> Keypair:
    """Deterministic test keys: key(0) is the registrar, key(1..) are people."""
    return Keypair.from_seed(i.to_bytes(32, "big"))


REGISTRAR = key(0)


def make_genesis(
    balances: dict[int, int] | None = None,
    *,
    commons_pool: int = 1_000_000,
    members: tuple[int, ...] = (),
    validators: dict[int, int] | None = None,
    demurrage_rate: int = RATE_SCALE // 100,
    ubi_fraction: int = RATE_SCALE // 10,
    slash_fraction: int = RATE_SCALE // 20,
    period_seconds: int = PERIOD_SECONDS,
    extra: dict[str, Any] | None = None,
) -> Genesis:
    balances = {1: 1_000_000, 2: 1_000_000} if balances is None else balances
    validators = validators or {}
    doc: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "genesis_time_ms": 0,
        "params": {
            "period_seconds": period_seconds,
            "demurrage_rate": demurrage_rate,
            "ubi_fraction": ubi_fraction,
            "slash_fraction": slash_fraction,
        },
        "total_supply": sum(balances.values()) + commons_pool + sum(validators.values()),
        "commons_pool": commons_pool,
        "registrar": REGISTRAR.address.hex(),
        "accounts": [{"address": key(i).address.hex(), "balance": b} for i, b in balances.items()],
        "members": [key(i).address.hex() for i in members],
        "validators": [{"address": key(i).address.hex(), "name": f"v{i}", "stake": s} for i, s in validators.items()],
    }
    doc.update(extra or {})
    return Genesis.from_document(doc)


def new_ledger(genesis: Genesis | None = None, store: Any = None) -> LedgerDB:
    return LedgerDB(store if store is not None else MemoryStore(), genesis or make_genesis())


def transfer_tx(sender: int, to: int, amount: int, nonce: int) -> bytes:
    return make_tx(CHAIN_ID, "transfer", key(sender), nonce, to=key(to).address, amount=amount)


def member_add_tx(member: int, nonce: int) -> bytes:
    return make_tx(CHAIN_ID, "member_add", REGISTRAR, nonce, member=key(member).address)


def member_remove_tx(member: int, nonce: int) -> bytes:
    return make_tx(CHAIN_ID, "member_remove", REGISTRAR, nonce, member=key(member).address)


def commit_block(db: LedgerDB, txs: tuple[bytes, ...] = (), *, time_ms: int | None = None) -> None:
    """Execute and commit the next block; its time defaults to one period after the head's."""
    head = db.head
    t = head.time_ms + PERIOD_MS if time_ms is None else time_ms
    db.commit(db.execute(BlockInput(head.height + 1, t, tuple(txs))))


def nonce_of(db: LedgerDB, i: int) -> int:
    account = db.view().get_account(key(i).address)
    return 0 if account is None else account.nonce

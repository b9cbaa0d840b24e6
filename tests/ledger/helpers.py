"""Builders shared by ledger tests: a genesis, keys, signed transactions, a ledger, blocks.

`make_genesis`, `node_doc` and `member_add_tx`/`member_remove_tx` are the only places tests describe
genesis and membership transactions, so a change of those rules is made here once.
"""

from __future__ import annotations

import functools
from typing import Any

from ledger import BlockInput, Genesis, LedgerDB, MemoryStore, make_tx
from ledger.authorization import compute_council_address
from ledger.constants import RATE_SCALE
from ledger.crypto import Keypair
from ledger.tx import encode_body, sign_tx

CHAIN_ID = "hearth-test"
PERIOD_SECONDS = 10
PERIOD_MS = PERIOD_SECONDS * 1000


def key(i: int) -> Keypair:
    """Deterministic test keys: key(1..) are people; councils use key(900..) (see NODE_COUNCILS)."""
    return Keypair.from_seed(i.to_bytes(32, "big"))


@functools.cache
def addr(i: int) -> bytes:
    """key(i)'s address (cached: deriving a key is slow)."""
    return key(i).address


NODE = "north"
"""The node `make_genesis` creates unless told otherwise; `members=` are its members."""

NODE_COUNCILS: dict[str, tuple[int, ...]] = {"north": (900, 901, 902), "south": (910, 911, 912), "east": (920, 921, 922)}
"""Each test node's council: three keys, threshold 2 unless a test says otherwise."""


def council_address(node: str = NODE) -> bytes:
    return compute_council_address(node)


def node_doc(
    node: str = NODE,
    *,
    members: tuple[int, ...] = (),
    threshold: int = 2,
    caps: dict[str, int] | None = None,
    providers: tuple[tuple[str, int], ...] = (),
    units: tuple[tuple[str, int], ...] = (),
    **fields: Any,
) -> dict[str, Any]:
    """A genesis node: `providers` as (resource, key index), `units` as (id, capacity); `fields`
    (housing_fee, area_delta_max, area_total_max, name) go in as they are."""
    return {
        "id": node,
        "council": {"keys": [key(i).address.hex() for i in NODE_COUNCILS[node]], "threshold": threshold},
        "members": [key(i).address.hex() for i in members],
        "caps": caps or {},
        "providers": [{"resource": r, "address": key(i).address.hex()} for r, i in providers],
        "units": [{"id": u, "capacity": c, "attributes": (u.encode().hex() * 64)[:64]} for u, c in units],
        **fields,
    }


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
    nodes: list[dict[str, Any]] | None = None,
    resources: list[dict[str, Any]] | None = None,
    housing: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Genesis:
    """A genesis. Without `nodes`, one node NODE whose members are `members`."""
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
        "accounts": [{"address": key(i).address.hex(), "balance": b} for i, b in balances.items()],
        "validators": [{"address": key(i).address.hex(), "name": f"v{i}", "stake": s} for i, s in validators.items()],
        "resources": resources or [],
        "housing": housing or {},
        "nodes": [node_doc(NODE, members=members)] if nodes is None else nodes,
    }
    doc.update(extra or {})
    return Genesis.from_document(doc)


def new_ledger(genesis: Genesis | None = None, store: Any = None) -> LedgerDB:
    return LedgerDB(store if store is not None else MemoryStore(), genesis or make_genesis())


def transfer_tx(sender: int, to: int, amount: int, nonce: int) -> bytes:
    return make_tx(CHAIN_ID, "transfer", key(sender), nonce, to=key(to).address, amount=amount)


def council_tx(tx_type: str, nonce: int, node: str = NODE, signers: tuple[int, ...] | None = None, **fields: Any) -> bytes:
    """A council action of `node`, from its council account, signed by `signers` (key indices;
    default: the first two council keys, the threshold)."""
    signers = NODE_COUNCILS[node][:2] if signers is None else signers
    body = encode_body(tx_type, CHAIN_ID, council_address(node), nonce, node=node, **fields)
    return sign_tx(CHAIN_ID, body, [key(i) for i in signers])


def member_add_tx(member: int, nonce: int, node: str = NODE) -> bytes:
    """The council of `node` registers key(member); `nonce` is the council account's."""
    return council_tx("member_add", nonce, node, member=key(member).address)


def member_remove_tx(member: int, nonce: int, node: str = NODE) -> bytes:
    return council_tx("member_remove", nonce, node, member=key(member).address)


def signed_tx(tx_type: str, sender: int, nonce: int, *, cosigners: tuple[int, ...] = (), **fields: Any) -> bytes:
    """A transaction from key(sender), signed by it and by `cosigners`."""
    body = encode_body(tx_type, CHAIN_ID, key(sender).address, nonce, **fields)
    return sign_tx(CHAIN_ID, body, [key(i) for i in (sender, *cosigners)])


def commit_block(db: LedgerDB, txs: tuple[bytes, ...] = (), *, time_ms: int | None = None) -> None:
    """Execute and commit the next block; its time defaults to one period after the head's."""
    head = db.head
    t = head.time_ms + PERIOD_MS if time_ms is None else time_ms
    db.commit(db.execute(BlockInput(head.height + 1, t, tuple(txs))))


def nonce_of(db: LedgerDB, i: int) -> int:
    account = db.view().get_account(key(i).address)
    return 0 if account is None else account.nonce


def council_nonce(db: LedgerDB, node: str = NODE) -> int:
    account = db.view().get_account(council_address(node))
    return 0 if account is None else account.nonce


# nodes, quotas and housing (specs/membership.md, quotas.md, housing.md) ---------------------------
WATER = {"id": "water", "unit": "litre", "cap_min": 0, "cap_max": 10**9, "floor_percent": 50, "ceiling_percent": 150}
ENERGY = {"id": "energy", "unit": "kWh", "cap_min": 100, "cap_max": 10**6, "floor_percent": 20, "ceiling_percent": 300}
HOUSING = {
    "fee_max": 10_000,
    "need_flags": ["disability", "children", "elderly"],
    "modification_kinds": ["extension", "accessibility"],
    "area_delta_max": 20,
    "area_total_max": 40,
}
WATER_PROVIDER = 50
ENERGY_PROVIDER = 51


def community_genesis(
    north: tuple[int, ...] = (1, 2, 3),
    south: tuple[int, ...] = (),
    *,
    caps: dict[str, int] | None = None,
    units: tuple[tuple[str, int], ...] = (),
    housing_fee: int = 0,
    balances: dict[int, int] | None = None,
    **genesis_args: Any,
) -> Genesis:
    """Two nodes, north and south, with water and energy, providers, housing rules; people 1..9
    hold 1,000,000 each unless `balances` says otherwise."""
    caps = {"water": 1_000, "energy": 600} if caps is None else caps
    providers = (("water", WATER_PROVIDER), ("energy", ENERGY_PROVIDER))
    return make_genesis(
        {i: 1_000_000 for i in range(1, 10)} if balances is None else balances,
        resources=[WATER, ENERGY],
        housing=HOUSING,
        nodes=[
            node_doc("north", members=north, caps=caps, providers=providers, units=units, housing_fee=housing_fee),
            node_doc("south", members=south, caps=caps, providers=providers),
        ],
        **genesis_args,
    )


def assert_rejected(db: LedgerDB, raw: bytes, code: Any) -> None:
    """`raw` is rejected at the head with `code`, and a block offered it leaves the state byte for
    byte as a block without it (same state root)."""
    from ledger import Rejected

    root = db.state_root
    try:
        db.check_tx(raw)
    except Rejected as exc:
        assert exc.code == code, f"rejected with {exc.code.name} ({exc.message}), expected {code.name}"
    else:
        raise AssertionError(f"accepted; expected {code.name}")
    head = db.head
    block = BlockInput(head.height + 1, head.time_ms)
    offered, empty = db.build(block, [raw]), db.build(block, [])
    assert offered.block.txs == ()
    assert offered.state_root == empty.state_root
    assert db.state_root == root

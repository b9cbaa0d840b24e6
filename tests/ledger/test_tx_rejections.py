"""Every kind of bad transaction is rejected with its stable code and changes nothing.

Each case is checked two ways: as a mempool check against the head, and inside a block (which the
ledger then refuses whole). In both, the state root and every stored byte stay as they were.
"""

from __future__ import annotations

import msgpack
import pytest

from ledger import BlockInput, Code, LedgerDB, MemoryStore, Rejected, make_tx
from ledger.constants import MAX_AMOUNT, MAX_TX_BYTES
from ledger.encoding import encode
from ledger.tx import encode_body, sign_tx
from tests.ledger.helpers import CHAIN_ID, PERIOD_MS, key, make_genesis, transfer_tx


@pytest.fixture
def db() -> LedgerDB:
    return LedgerDB(MemoryStore(), make_genesis({1: 1_000, 2: 1_000}))


def assert_rejected(db: LedgerDB, raw: bytes, code: Code) -> None:
    root, stored = db.state_root, dict(db.store._data)  # type: ignore[attr-defined]
    with pytest.raises(Rejected) as err:
        db.check_tx(raw)
    assert err.value.code is code, err.value
    with pytest.raises(Rejected) as err:
        db.execute(BlockInput(db.head.height + 1, db.head.time_ms + 1, (raw,)))
    assert err.value.code is Code.BLOCK_INVALID
    assert code.name in err.value.message
    assert db.state_root == root
    assert db.store._data == stored  # type: ignore[attr-defined]


def signed(body: dict, signer: int = 1) -> bytes:
    body_bytes = encode(body)
    return sign_tx(CHAIN_ID, body_bytes, [key(signer)])


def transfer_body(**over: object) -> dict:
    body = {"type": "transfer", "chain": CHAIN_ID, "from": key(1).address, "nonce": 0, "to": key(2).address, "amount": 10}
    body.update(over)
    return body


def test_valid_transfer_is_accepted(db: LedgerDB) -> None:
    db.check_tx(transfer_tx(1, 2, 10, 0))


def test_oversized(db: LedgerDB) -> None:
    raw = signed(transfer_body(memo="x" * 200)) + b"\x00" * MAX_TX_BYTES
    assert_rejected(db, raw, Code.TX_TOO_LARGE)


def test_undecodable(db: LedgerDB) -> None:
    assert_rejected(db, b"\xc1\xc1\xc1", Code.TX_MALFORMED)


def test_not_an_envelope(db: LedgerDB) -> None:
    assert_rejected(db, encode({"hello": 1}), Code.TX_MALFORMED)


def test_non_canonical_body(db: LedgerDB) -> None:
    body = transfer_body()
    unsorted = msgpack.packb(dict(reversed(list(body.items()))), use_bin_type=True)
    raw = encode([unsorted, [[key(1).address, key(1).sign(unsorted)]]])
    assert_rejected(db, raw, Code.TX_MALFORMED)


def test_bad_signature(db: LedgerDB) -> None:
    raw = bytearray(transfer_tx(1, 2, 10, 0))
    raw[-1] ^= 0x01  # last byte of the signature
    assert_rejected(db, bytes(raw), Code.BAD_SIGNATURE)


def test_no_signature(db: LedgerDB) -> None:
    assert_rejected(db, encode([encode(transfer_body()), []]), Code.TX_MISSING_FIELD)


def test_signed_by_another_key(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(), signer=2), Code.UNAUTHORIZED)


def test_wrong_chain_id(db: LedgerDB) -> None:
    raw = make_tx("another-chain", "transfer", key(1), 0, to=key(2).address, amount=10)
    assert_rejected(db, raw, Code.WRONG_CHAIN)


def test_stale_nonce(db: LedgerDB) -> None:
    db.commit(db.execute(BlockInput(1, PERIOD_MS // 2, (transfer_tx(1, 2, 10, 0),))))
    assert_rejected(db, transfer_tx(1, 2, 10, 0), Code.NONCE_STALE)


def test_future_nonce(db: LedgerDB) -> None:
    assert_rejected(db, transfer_tx(1, 2, 10, 1), Code.NONCE_FUTURE)


def test_insufficient_funds(db: LedgerDB) -> None:
    assert_rejected(db, transfer_tx(1, 2, 1_001, 0), Code.INSUFFICIENT_FUNDS)


def test_unknown_sender_has_no_funds(db: LedgerDB) -> None:
    assert_rejected(db, transfer_tx(9, 2, 1, 0), Code.INSUFFICIENT_FUNDS)


def test_zero_amount(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(amount=0)), Code.AMOUNT_NOT_POSITIVE)


def test_negative_amount(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(amount=-5)), Code.AMOUNT_NOT_POSITIVE)


def test_overflowing_amount(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(amount=MAX_AMOUNT + 1)), Code.AMOUNT_OUT_OF_RANGE)


def test_amount_of_wrong_type(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(amount="10")), Code.TX_BAD_FIELD)


def test_boolean_is_not_an_amount(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(amount=True)), Code.TX_BAD_FIELD)


def test_unknown_type(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(type="print_money")), Code.TX_UNKNOWN_TYPE)


@pytest.mark.parametrize("field", ["type", "chain", "from", "nonce", "to", "amount"])
def test_missing_field(db: LedgerDB, field: str) -> None:
    body = transfer_body()
    del body[field]
    assert_rejected(db, signed(body), Code.TX_MISSING_FIELD)


def test_unknown_field(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(mint=1_000_000)), Code.TX_BAD_FIELD)


def test_bad_address(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(to=b"short")), Code.TX_BAD_FIELD)


def test_self_transfer(db: LedgerDB) -> None:
    assert_rejected(db, signed(transfer_body(to=key(1).address)), Code.SELF_TRANSFER)


def test_signatures_out_of_order(db: LedgerDB) -> None:
    body_bytes = encode(transfer_body())
    a, b = sorted([key(1), key(2)], key=lambda k: k.address)
    sigs = [[b.address, b.sign(body_bytes)], [a.address, a.sign(body_bytes)]]
    assert_rejected(db, encode([body_bytes, sigs]), Code.TX_BAD_FIELD)


def test_a_rejected_tx_inside_a_block_rejects_the_block_and_keeps_earlier_txs_out(db: LedgerDB) -> None:
    good, bad = transfer_tx(1, 2, 10, 0), transfer_tx(1, 2, 10, 5)
    root = db.state_root
    with pytest.raises(Rejected) as err:
        db.execute(BlockInput(1, 1, (good, bad)))
    assert "transaction 1" in err.value.message
    assert db.state_root == root


def test_block_height_must_follow_the_head(db: LedgerDB) -> None:
    with pytest.raises(Rejected) as err:
        db.execute(BlockInput(2, 1))
    assert err.value.code is Code.BLOCK_HEIGHT


def test_block_time_must_not_go_backwards(db: LedgerDB) -> None:
    db.commit(db.execute(BlockInput(1, 5_000)))
    with pytest.raises(Rejected) as err:
        db.execute(BlockInput(2, 4_999))
    assert err.value.code is Code.BLOCK_TIME


def test_body_encoder_builds_what_the_decoder_accepts(db: LedgerDB) -> None:
    body = encode_body("transfer", CHAIN_ID, key(1).address, 0, to=key(2).address, amount=3)
    db.check_tx(sign_tx(CHAIN_ID, body, [key(1)]))


@pytest.mark.parametrize(
    "body",
    [
        {b"x": 1, "type": "transfer"},  # text and byte keys together: sorting them raised TypeError
        {1: 2, "type": "transfer"},
        {"type": "transfer", "nested": {b"k": 1, "a": 2}},
    ],
)
def test_maps_with_non_text_keys_are_malformed_not_a_crash(db: LedgerDB, body: dict) -> None:
    raw = msgpack.packb([msgpack.packb(body, use_bin_type=True), [[b"\x01" * 32, b"\x02" * 64]]], use_bin_type=True)
    assert_rejected(db, raw, Code.TX_MALFORMED)

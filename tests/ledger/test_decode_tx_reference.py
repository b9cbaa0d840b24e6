"""`decode_tx` inlines the encoding module's decode and canonical-form checks for speed. Here the check of
form written plainly with `ledger.encoding` (specs/monetary.md section 9's order: size, decoding and
canonical form, fields) is the reference, and decode_tx must give the very same Tx, or the same
rejection (code and message), on anything: valid transactions of every shape, their bytes mutated,
and arbitrary msgpack values in place of the body or the envelope."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import Rejected, encoding, make_tx
from ledger.constants import MAX_AMOUNT, MAX_MEMO_BYTES, MAX_TX_BYTES
from ledger.crypto import sha256
from ledger.errors import Code
from ledger.tx import Tx, _check_body, _check_signature_list, decode_tx
from tests.ledger.helpers import CHAIN_ID, key


def reference_decode_tx(raw: Any) -> Tx:
    if not isinstance(raw, (bytes, bytearray)):
        raise Rejected(Code.TX_MALFORMED, "transaction must be bytes")
    raw = bytes(raw)
    if len(raw) > MAX_TX_BYTES:
        raise Rejected(Code.TX_TOO_LARGE, f"transaction is {len(raw)} bytes; the limit is {MAX_TX_BYTES}")
    try:
        envelope = encoding.decode(raw, MAX_TX_BYTES, use_list=False)
    except encoding.EncodingError as exc:
        raise Rejected(Code.TX_MALFORMED, str(exc)) from None
    if not (type(envelope) is tuple and len(envelope) == 2 and type(envelope[0]) is bytes and type(envelope[1]) is tuple):
        raise Rejected(Code.TX_MALFORMED, "a transaction is [body bytes, signatures]")
    body_bytes, sig_list = envelope
    signatures = _check_signature_list(sig_list)
    try:
        body = encoding.decode(body_bytes, MAX_TX_BYTES)
        if not encoding.has_canonical_form(body) or encoding.encode_fast(body) != body_bytes or encoding.encode_fast(envelope) != raw:
            raise encoding.EncodingError("not canonical")
    except encoding.EncodingError as exc:
        raise Rejected(Code.TX_MALFORMED, f"body: {exc}") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise Rejected(Code.TX_MALFORMED, f"body: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise Rejected(Code.TX_MALFORMED, "body must be a map")
    _check_body(body)
    return Tx(raw, sha256(raw), body_bytes, body, signatures)


def _outcome(decode: Any, raw: Any) -> Any:
    try:
        tx = decode(raw)
    except Rejected as exc:
        return ("rejected", exc.code, exc.message)
    return ("tx", tx.raw, tx.hash, tx.body_bytes, tx.body, tx.signatures, [type(v) for v in tx.body.values()])


VALID = [
    make_tx(CHAIN_ID, "transfer", key(1), 3, to=key(2).address, amount=10),
    make_tx(CHAIN_ID, "transfer", key(1), 4, to=key(2).address, amount=10, memo="rent"),
    make_tx(CHAIN_ID, "member_add", key(900), 0, node="north", member=key(3).address),
    make_tx(CHAIN_ID, "housing_apply", key(5), 0, household=3, needs=2),
]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False), st.text(max_size=8), st.binary(max_size=40))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=6), st.integers(0, 9)), inner, max_size=4)), max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(base=st.sampled_from(VALID), at=st.integers(0, 10_000), mask=st.integers(0, 255), cut=st.integers(0, 400))
def test_the_same_outcome_on_mutated_transactions(base: bytes, at: int, mask: int, cut: int) -> None:
    i = at % len(base)
    for raw in (base, base[:i] + bytes([base[i] ^ mask]) + base[i + 1 :], base[: len(base) - cut % len(base)], base + b"\x00"):
        assert _outcome(decode_tx, raw) == _outcome(reference_decode_tx, raw)


@settings(max_examples=400, deadline=None)
@given(body=values, signed_as=st.sampled_from(VALID), extra=st.one_of(st.none(), values))
def test_the_same_outcome_on_arbitrary_bodies_and_envelopes(body: Any, signed_as: bytes, extra: Any) -> None:
    _, signatures = msgpack.unpackb(signed_as)
    real_body = msgpack.unpackb(msgpack.unpackb(signed_as)[0])
    try:
        body_bytes = msgpack.packb(body, use_bin_type=True)
        mixed = msgpack.packb({**real_body, "extra": extra}, use_bin_type=True)
        field = msgpack.packb(dict(sorted({**real_body, "amount": extra}.items())), use_bin_type=True)  # canonical but for the value
    except (TypeError, ValueError, OverflowError):
        return
    for envelope in ([body_bytes, signatures], [mixed, signatures], [field, signatures], body, [body_bytes, signatures, b""], [body_bytes, body]):
        try:
            raw = msgpack.packb(envelope, use_bin_type=True)
        except (TypeError, ValueError, OverflowError):
            continue
        assert _outcome(decode_tx, raw) == _outcome(reference_decode_tx, raw)


def test_the_same_outcome_on_valid_transactions_and_non_bytes() -> None:
    for raw in [*VALID, bytearray(VALID[0]), "text", None, b"", b"\xc1", bytes(MAX_TX_BYTES + 1)]:
        assert _outcome(decode_tx, raw) == _outcome(reference_decode_tx, raw)
    assert _outcome(decode_tx, VALID[0])[0] == "tx"


def test_the_same_outcome_where_a_length_claims_more_than_the_input_holds() -> None:
    """decode_tx leaves msgpack's own limits (set from the input's length) to bound strings,
    binaries, arrays and maps, where the reference passes MAX_TX_BYTES and the array and map caps:
    headers that claim more than any input of MAX_TX_BYTES could hold, in the body and in the
    envelope, and extension types, get the same refusal."""
    body_bytes, signatures = msgpack.unpackb(VALID[0])
    huge = [
        b"\xc6" + (MAX_TX_BYTES * 2).to_bytes(4, "big") + b"x" * 40,  # bin32
        b"\xdb" + (MAX_TX_BYTES * 2).to_bytes(4, "big") + b"x" * 40,  # str32
        b"\xdd" + (200_000).to_bytes(4, "big") + b"\xc0" * 40,  # array32
        b"\xdf" + (20_000).to_bytes(4, "big") + b"\xa1a\xc0" * 20,  # map32
        b"\xdf" + (9_000).to_bytes(4, "big") + b"\xa1a\xc0" * 20,  # within the map cap, past the input
        b"\xd4\x01\x00",  # fixext1
        b"\xc7\x03\x05abc",  # ext8
    ]
    for inner in huge:
        for raw in (
            msgpack.packb([inner, signatures], use_bin_type=True),  # as the body
            inner,  # as the envelope
            msgpack.packb([body_bytes, signatures], use_bin_type=True)[:1] + inner,  # inside the envelope
        ):
            outcome = _outcome(decode_tx, raw)
            assert outcome[0] == "rejected"
            assert outcome == _outcome(reference_decode_tx, raw)


def _with_field(signed_as: bytes, name: str, value: Any) -> bytes | None:
    """`signed_as` with one field of its body replaced (keys kept in canonical order), or None
    when msgpack cannot pack the value."""
    body_bytes, signatures = msgpack.unpackb(signed_as)
    body = dict(sorted({**msgpack.unpackb(body_bytes), name: value}.items()))
    try:
        return msgpack.packb([msgpack.packb(body, use_bin_type=True), signatures], use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return None


TRANSFERS = VALID[:2]  # without a memo and with one: the shapes decode_tx checks in one pass
EDGES = [0, 1, -1, MAX_AMOUNT, MAX_AMOUNT + 1, 2**64 - 1, True, 1.0, "", "é" * 32, "é" * 33, "a" * 64, "a" * 65, b"", bytes(32), bytes(33), [], {}, None]


@settings(max_examples=300, deadline=None)
@given(signed_as=st.sampled_from(TRANSFERS), name=st.sampled_from(["amount", "chain", "from", "memo", "nonce", "to", "type", "zz"]), value=st.one_of(values, st.sampled_from(EDGES)))
def test_the_same_outcome_on_transfers_with_any_field_value(signed_as: bytes, name: str, value: Any) -> None:
    """Every field of a transfer, and a memo or an unknown field added, set to any value: the
    one-pass check of a transfer's fields refuses what the plain check refuses, as it does."""
    raw = _with_field(signed_as, name, value)
    if raw is not None:
        assert _outcome(decode_tx, raw) == _outcome(reference_decode_tx, raw)


def test_the_same_outcome_at_the_bounds_of_each_transfer_field() -> None:
    memo_max = "m" * MAX_MEMO_BYTES
    cases = [("amount", v) for v in (0, 1, MAX_AMOUNT, MAX_AMOUNT + 1, -5, True)]
    cases += [("nonce", v) for v in (0, MAX_AMOUNT, MAX_AMOUNT + 1, -1, False)]
    cases += [("memo", v) for v in ("", memo_max, memo_max + "m", "é" * (MAX_MEMO_BYTES // 2), "é" * (MAX_MEMO_BYTES // 2 + 1), b"x")]
    cases += [("chain", v) for v in ("c" * 64, "c" * 65, "é" * 32, "é" * 33)]
    cases += [("type", v) for v in ("transfer", "transfers", "member_leave", b"transfer")]
    cases += [("from", bytes(31)), ("to", bytes(33)), ("to", "x" * 32)]
    decoded = 0
    for signed_as in TRANSFERS:
        for name, value in cases:
            raw = _with_field(signed_as, name, value)
            assert raw is not None
            outcome = _outcome(decode_tx, raw)
            assert outcome == _outcome(reference_decode_tx, raw), (name, value)
            decoded += outcome[0] == "tx"
    assert decoded >= 10  # the valid edges decode (their signatures are not checked here)

"""`apply_block` checks every transaction's bytes (form, chain, signatures: `check_block_tx_bytes`) before
any runs. The outcome must be the one specs/monetary.md section 10 describes, each transaction checked
and then run in turn: the same state, or the same rejection naming the first transaction that fails,
whichever check fails it. Here the spec's loop, written out, is the reference."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import BlockInput, Rejected, SignatureCache, detached, encoding, make_tx, process_tx
from ledger.errors import Code
from ledger.transition import check_block_tx_bytes, check_conservation, process_block_header
from tests.ledger.helpers import CHAIN_ID, key, make_genesis, new_ledger, transfer_tx

LEDGER = new_ledger(make_genesis({i: 1_000 for i in range(1, 5)}))


def _bad_signature(raw: bytes) -> bytes:
    body_bytes, ((public_key, signature),) = msgpack.unpackb(raw)
    return encoding.encode_fast([body_bytes, [[public_key, bytes([signature[0] ^ 1]) + signature[1:]]]])


def _spec_apply_block(block: BlockInput) -> tuple[dict, str | None]:
    """The state transition as specs/monetary.md section 10 writes it: each transaction in turn."""
    state = LEDGER.view()
    try:
        process_block_header(state, block)
        for index, raw in enumerate(block.txs):
            try:
                process_tx(state, raw)
            except Rejected as exc:
                raise Rejected(Code.BLOCK_INVALID, f"transaction {index}: {exc.code.name}: {exc.message}") from None
        check_conservation(state)
    except Rejected as exc:
        return {}, exc.message
    return dict(state.changes), None


def _apply_block(block: BlockInput, verified: SignatureCache | None) -> tuple[dict, str | None]:
    try:
        executed = LEDGER.execute(block, verified)
    except Rejected as exc:
        return {}, exc.message
    return dict(executed.state.changes), None


# a transaction of each kind: (sender, to, amount); the nonce is the sender's next
KINDS = ("valid", "bad_signature", "wrong_chain", "malformed", "insufficient", "stale_nonce")


def _tx(kind: str, sender: int, to: int, amount: int, nonce: int) -> bytes:
    if kind == "bad_signature":
        return _bad_signature(transfer_tx(sender, to, amount, nonce))
    if kind == "wrong_chain":
        return make_tx(CHAIN_ID + "-other", "transfer", key(sender), nonce, to=key(to).address, amount=amount)
    if kind == "malformed":
        return transfer_tx(sender, to, amount, nonce)[:-3]
    if kind == "insufficient":
        return transfer_tx(sender, to, 10**6, nonce)
    if kind == "stale_nonce":
        return transfer_tx(sender, to, amount, nonce + 5)
    return transfer_tx(sender, to, amount, nonce)


@settings(max_examples=150, deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(1, 4), st.integers(1, 4), st.integers(1, 300)).filter(lambda t: t[1] != t[2]),
        max_size=8,
    ),
    cached=st.booleans(),
)
def test_checking_every_transaction_first_gives_the_specs_outcome(plan: list[tuple[str, int, int, int]], cached: bool) -> None:
    nonces = {i: 0 for i in range(1, 5)}
    txs = []
    for kind, sender, to, amount in plan:
        txs.append(_tx(kind, sender, to, amount, nonces[sender]))
        if kind == "valid":
            nonces[sender] += 1
    block = BlockInput(1, 1_000, tuple(txs))
    verified = SignatureCache() if cached else None
    assert _apply_block(block, verified) == _spec_apply_block(block)


@pytest.mark.parametrize(
    ("kinds", "named"),
    [
        (("insufficient", "bad_signature"), "transaction 0: INSUFFICIENT_FUNDS"),  # the state check of an earlier one comes first
        (("valid", "bad_signature", "insufficient"), "transaction 1: BAD_SIGNATURE"),
        (("valid", "valid", "wrong_chain"), "transaction 2: WRONG_CHAIN"),
        (("malformed", "insufficient"), "transaction 0: TX_MALFORMED"),
    ],
)
def test_a_rejection_names_the_first_transaction_that_fails(kinds: tuple[str, ...], named: str) -> None:
    txs = tuple(_tx(kind, 1, 2, 10, n) for n, kind in enumerate(kinds))
    with pytest.raises(Rejected) as raised:
        LEDGER.execute(BlockInput(1, 1_000, txs))
    assert raised.value.code is Code.BLOCK_INVALID and raised.value.message.startswith(named)


def test_the_signatures_of_a_block_land_in_the_cache_once_checked() -> None:
    txs = tuple(transfer_tx(1, 2, 10, n) for n in range(3))
    verified = SignatureCache()
    executed = LEDGER.execute(BlockInput(1, 1_000, txs), verified)
    assert all(tx.hash in verified for tx in executed.txs) and len(verified) == 3


def test_the_failure_check_block_tx_bytes_returns_holds_no_frames() -> None:
    """The first failing transaction's refusal comes back detached (ledger `detached`): no
    traceback holding the check's frame and the transactions it decoded."""
    txs, failed = check_block_tx_bytes([transfer_tx(1, 2, 5, 0), _bad_signature(transfer_tx(2, 1, 5, 0))], SignatureCache(), CHAIN_ID)
    assert len(txs) == 1 and failed is not None and failed[0] == 1
    assert failed[1].code is Code.BAD_SIGNATURE and failed[1].__traceback__ is None


def test_detached_keeps_a_refusals_code_and_message_and_drops_its_frames_context_and_cause() -> None:
    for chained in (False, True):
        try:
            try:
                raise ValueError("the decoder's own error")
            except ValueError as inner:
                if chained:
                    raise Rejected(Code.TX_MALFORMED, "not canonical") from inner
                raise Rejected(Code.TX_MALFORMED, "not canonical") from None
        except Rejected as exc:
            assert exc.__traceback__ is not None and exc.__context__ is not None  # what there is to drop
            assert (exc.__cause__ is not None) is chained
            kept = detached(exc)
        assert kept.__traceback__ is None and kept.__context__ is None and kept.__cause__ is None
        assert (kept.code, kept.message, str(kept)) == (Code.TX_MALFORMED, "not canonical", "TX_MALFORMED: not canonical")

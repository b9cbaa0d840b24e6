"""consensus.block: the header commits to the whole block; the hash is sha256 of the header."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.block import Block, Header, merkle_root, txs_root
from consensus.errors import MessageInvalid
from consensus.evidence import DuplicateVoteEvidence
from consensus.testing import keypairs, sign_vote
from consensus.types import VoteKind
from ledger.crypto import sha256
from ledger.encoding import encode

KEY = keypairs(1)[0]


def evidence_at(height: int) -> DuplicateVoteEvidence:
    a = sign_vote(KEY, "c", VoteKind.PREVOTE, height, 0, b"\x01" * 32)
    b = sign_vote(KEY, "c", VoteKind.PREVOTE, height, 0, None)
    return DuplicateVoteEvidence.from_votes(a, b)


def block(
    height: int = 2,
    txs: tuple[bytes, ...] = (b"tx1", b"tx2"),
    evidence: tuple[DuplicateVoteEvidence, ...] = (),
) -> Block:
    return Block.build(
        chain_id="hearth-test",
        height=height,
        time_ms=1_700_000_000_000,
        prev_block_hash=b"\x05" * 32,
        state_root=b"\x06" * 32,
        proposer=KEY.public_key,
        validators_hash=b"\x07" * 32,
        txs=txs,
        evidence=evidence,
    )


def test_block_hash_is_sha256_of_the_canonical_header() -> None:
    b = block()
    assert b.hash == sha256(encode(b.header.to_wire())) == b.header.hash
    assert len(b.hash) == 32


def test_block_round_trips_and_keeps_its_hash() -> None:
    b = block(evidence=(evidence_at(1),))
    again = Block.from_bytes(b.to_bytes())
    assert again == b and again.hash == b.hash


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Header)])
def test_every_header_field_changes_the_hash(field: str) -> None:
    header = block().header
    value = getattr(header, field)
    if isinstance(value, str):
        changed: object = value + "x"
    elif isinstance(value, int):
        changed = value + 1
    else:
        changed = bytes(b ^ 1 for b in value)
    assert dataclasses.replace(header, **{field: changed}).hash != header.hash


def test_body_that_does_not_match_the_header_is_rejected() -> None:
    b = block()
    with pytest.raises(MessageInvalid, match="txs_hash"):
        Block(b.header, (b"tx1", b"other"), ())
    with pytest.raises(MessageInvalid, match="evidence_hash"):
        Block(b.header, b.txs, (evidence_at(1),))
    wire = b.to_wire()
    wire["txs"] = [b"tx2", b"tx1"]
    with pytest.raises(MessageInvalid):
        Block.from_wire(wire)


def test_a_built_block_hashes_its_transactions_once_and_a_new_tuple_is_hashed_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Block.build` computes the root and the block's own check reuses it (the same tuple); equal
    transactions in another tuple, or in a list, are hashed again, so the root is never stale."""
    hashed: list[object] = []

    def counting(leaves: list[bytes] | tuple[bytes, ...]) -> bytes:
        hashed.append(leaves)
        return merkle_root(leaves)

    monkeypatch.setattr("consensus.block.merkle_root", counting)
    txs = (b"tx-a", b"tx-b", b"tx-c")
    built = block(txs=txs)
    assert [h for h in hashed if h is txs] == [txs] and built.header.txs_hash == merkle_root(txs)
    same_content = tuple(bytes(t) for t in (b"tx-a", b"tx-b", b"tx-c"))
    hashed.clear()
    assert txs_root(same_content) == merkle_root(txs) and hashed == [same_content]
    listed = [b"tx-a", b"tx-b"]
    assert txs_root(listed) == merkle_root(listed)
    listed.append(b"tx-c")
    assert txs_root(listed) == merkle_root(txs)  # a list is never remembered
    with pytest.raises(MessageInvalid, match="txs_hash"):
        Block(built.header, (b"tx-a", b"tx-b"), ())


def test_evidence_must_come_from_an_earlier_height() -> None:
    with pytest.raises(MessageInvalid, match="earlier height"):
        block(height=2, evidence=(evidence_at(2),))


def test_empty_transactions_are_rejected() -> None:
    with pytest.raises(MessageInvalid):
        block(txs=(b"",))


def test_merkle_root_follows_rfc6962() -> None:
    assert merkle_root([]) == sha256(b"")
    leaf = [sha256(b"\x00" + x) for x in (b"a", b"b", b"c")]
    assert merkle_root([b"a"]) == leaf[0]
    ab = sha256(b"\x01" + leaf[0] + leaf[1])
    assert merkle_root([b"a", b"b"]) == ab
    assert merkle_root([b"a", b"b", b"c"]) == sha256(b"\x01" + ab + leaf[2])


def _rfc6962_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 as written: MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])), k the
    largest power of two below n."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return sha256(b"\x00" + leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return sha256(b"\x01" + _rfc6962_root(leaves[:k]) + _rfc6962_root(leaves[k:]))


def test_merkle_root_is_the_rfc6962_recursion_for_every_count_up_to_300() -> None:
    leaves = [i.to_bytes(2, "big") for i in range(300)]
    for n in range(301):
        assert merkle_root(leaves[:n]) == _rfc6962_root(leaves[:n]), n


@settings(max_examples=50)
@given(st.lists(st.binary(min_size=1, max_size=8), max_size=9), st.data())
def test_merkle_root_changes_when_any_leaf_changes_or_one_is_added(
    leaves: list[bytes], data: st.DataObject
) -> None:
    root = merkle_root(leaves)
    if leaves:
        i = data.draw(st.integers(0, len(leaves) - 1))
        assert merkle_root(leaves[:i] + [leaves[i] + b"!"] + leaves[i + 1 :]) != root
    assert merkle_root(leaves + [b"x"]) != root


@settings(max_examples=100)
@given(st.binary(max_size=300))
def test_random_bytes_are_rejected_as_message_invalid_only(data: bytes) -> None:
    try:
        Block.from_bytes(data)
    except MessageInvalid:
        return
    raise AssertionError("random bytes decoded as a block")

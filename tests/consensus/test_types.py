"""consensus.types: wire round trips, strict rejection of garbage, sign bytes, quorum arithmetic."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.errors import CertificateInvalid, MessageInvalid
from consensus.testing import keypairs, sign_proposal, sign_vote, validator_set_of
from consensus.types import (
    CommitCertificate,
    CommitSignature,
    Proposal,
    Validator,
    ValidatorSet,
    Vote,
    VoteKind,
    proposal_sign_bytes,
    vote_sign_bytes,
)

CHAIN = "hearth-test"
KEYS = keypairs(4)
VSET = validator_set_of(KEYS)

hashes = st.binary(min_size=32, max_size=32)
heights = st.integers(1, 2**63 - 1)
rounds = st.integers(0, 2**31 - 1)
signatures = st.binary(min_size=64, max_size=64)
kinds = st.sampled_from(list(VoteKind))


@st.composite
def proposals(draw: st.DrawFn) -> Proposal:
    round = draw(rounds)
    pol = draw(st.integers(-1, round - 1))
    return Proposal(draw(heights), round, draw(hashes), pol, draw(signatures))


votes = st.builds(Vote, kinds, heights, rounds, st.none() | hashes, hashes, signatures)


@st.composite
def certificates(draw: st.DrawFn) -> CommitCertificate:
    signers = draw(st.lists(hashes, min_size=1, max_size=8, unique=True))
    sigs = tuple(CommitSignature(a, draw(signatures)) for a in sorted(signers))
    return CommitCertificate(draw(heights), draw(rounds), draw(hashes), sigs)


validator_sets = st.dictionaries(hashes, st.integers(1, 2**40), min_size=1, max_size=8).map(
    ValidatorSet.from_powers
)

wire_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
    | st.binary(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=7),
    max_leaves=25,
)

TYPES = [Proposal, Vote, CommitCertificate, ValidatorSet, Validator, CommitSignature]


@given(st.one_of(proposals(), votes, certificates(), validator_sets))
def test_every_type_round_trips_through_canonical_bytes(value: Any) -> None:
    data = value.to_bytes()
    assert type(value).from_bytes(data) == value
    assert type(value).from_wire(value.to_wire()) == value


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
@settings(max_examples=150)
@given(garbage=wire_values)
def test_from_wire_rejects_garbage_with_message_invalid_only(cls: Any, garbage: Any) -> None:
    try:
        value = cls.from_wire(garbage)
    except MessageInvalid:
        return
    assert cls.from_wire(value.to_wire()) == value


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.__name__)
@settings(max_examples=150)
@given(data=st.binary(max_size=200))
def test_from_bytes_rejects_random_bytes_with_message_invalid_only(cls: Any, data: bytes) -> None:
    try:
        value = cls.from_bytes(data)
    except MessageInvalid:
        return
    assert value.to_bytes() == data  # only the canonical encoding is ever accepted


def _vote_wire() -> dict[str, Any]:
    return sign_vote(KEYS[0], CHAIN, VoteKind.PREVOTE, 3, 1, b"\x11" * 32).to_wire()


@pytest.mark.parametrize(
    "field, bad",
    [
        ("kind", 0),
        ("kind", 3),
        ("kind", True),
        ("height", 0),
        ("height", -1),
        ("height", "3"),
        ("height", True),
        ("round", -1),
        ("round", 2**31),
        ("block_hash", b"\x11" * 31),
        ("block_hash", "11" * 32),
        ("validator", b"\x00" * 33),
        ("signature", b"\x00" * 63),
        ("signature", None),
    ],
)
def test_vote_from_wire_rejects_a_wrong_field(field: str, bad: Any) -> None:
    wire = _vote_wire()
    wire[field] = bad
    with pytest.raises(MessageInvalid):
        Vote.from_wire(wire)


def test_unknown_and_missing_fields_are_rejected() -> None:
    wire = _vote_wire()
    with pytest.raises(MessageInvalid, match="unknown"):
        Vote.from_wire({**wire, "extra": 1})
    del wire["round"]
    with pytest.raises(MessageInvalid, match="missing"):
        Vote.from_wire(wire)


def test_non_canonical_bytes_are_rejected() -> None:
    import msgpack

    wire = _vote_wire()
    unsorted = msgpack.packb(dict(reversed(list(wire.items()))), use_bin_type=True)
    assert Vote.from_wire(wire)  # the value itself is fine
    with pytest.raises(MessageInvalid, match="canonical"):
        Vote.from_bytes(unsorted)


def test_proposal_pol_round_must_be_before_its_round() -> None:
    with pytest.raises(MessageInvalid):
        Proposal(1, 2, b"\x00" * 32, 2, b"\x00" * 64)
    with pytest.raises(MessageInvalid):
        Proposal(1, 0, b"\x00" * 32, -2, b"\x00" * 64)
    assert Proposal(1, 2, b"\x00" * 32, 1, b"\x00" * 64).pol_round == 1


def test_sign_bytes_are_domain_separated_and_name_the_chain() -> None:
    h = b"\x22" * 32
    a = vote_sign_bytes(CHAIN, VoteKind.PREVOTE, 1, 0, h, KEYS[0].public_key)
    assert a.startswith(b"hearth/vote/v1\x00" + CHAIN.encode() + b"\x00")
    assert a != vote_sign_bytes("other-chain", VoteKind.PREVOTE, 1, 0, h, KEYS[0].public_key)
    assert a != vote_sign_bytes(CHAIN, VoteKind.PRECOMMIT, 1, 0, h, KEYS[0].public_key)
    assert proposal_sign_bytes(CHAIN, 1, 0, h, -1).startswith(b"hearth/proposal/v1\x00")


@pytest.mark.parametrize("chain_id", ["", "a\x00b", "x" * 65, "tab\there"])
def test_sign_bytes_refuse_a_bad_chain_id(chain_id: str) -> None:
    with pytest.raises(MessageInvalid):
        proposal_sign_bytes(chain_id, 1, 0, b"\x00" * 32, -1)


def test_signatures_verify_only_on_their_own_chain_and_message() -> None:
    vote = sign_vote(KEYS[1], CHAIN, VoteKind.PRECOMMIT, 5, 2, None)
    assert vote.is_signature_valid(CHAIN)
    assert not vote.is_signature_valid("other-chain")
    forged = Vote(vote.kind, vote.height, vote.round, b"\x01" * 32, vote.validator, vote.signature)
    assert not forged.is_signature_valid(CHAIN)
    proposal = sign_proposal(KEYS[2], CHAIN, 5, 2, b"\x01" * 32, 1)
    assert proposal.is_signed_by(KEYS[2].public_key, CHAIN)
    assert not proposal.is_signed_by(KEYS[3].public_key, CHAIN)


@pytest.mark.parametrize(
    "total, quorum, skip", [(1, 1, 1), (3, 3, 2), (4, 3, 2), (6, 5, 3), (7, 5, 3), (100, 67, 34)]
)
def test_quorum_is_the_smallest_power_above_two_thirds(total: int, quorum: int, skip: int) -> None:
    vset = ValidatorSet((Validator(b"\x01" * 32, total),))
    assert vset.quorum_power == quorum
    assert 3 * quorum > 2 * total and 3 * (quorum - 1) <= 2 * total
    assert vset.round_skip_power == skip
    assert 3 * skip > total and 3 * (skip - 1) <= total


def test_validator_set_must_be_sorted_unique_and_non_empty() -> None:
    a, b = Validator(b"\x01" * 32, 1), Validator(b"\x02" * 32, 1)
    assert ValidatorSet((a, b)).total_power == 2
    for bad in [(b, a), (a, a), ()]:
        with pytest.raises(MessageInvalid):
            ValidatorSet(bad)
    with pytest.raises(MessageInvalid):
        Validator(b"\x01" * 32, 0)


def test_validator_set_hash_covers_members_and_powers() -> None:
    base = validator_set_of(KEYS, [1, 2, 3, 4])
    assert base.hash == validator_set_of(KEYS, [1, 2, 3, 4]).hash
    assert base.hash != validator_set_of(KEYS, [1, 2, 3, 5]).hash
    assert base.hash != validator_set_of(KEYS[:3], [1, 2, 3]).hash


def _certificate(
    signers: list[int], block_hash: bytes = b"\x33" * 32, chain: str = CHAIN
) -> CommitCertificate:
    precommits = [sign_vote(KEYS[i], chain, VoteKind.PRECOMMIT, 7, 1, block_hash) for i in signers]
    return CommitCertificate.from_precommits(precommits)


def test_certificate_with_a_quorum_verifies() -> None:
    cert = _certificate([3, 0, 2])
    cert.verify(VSET, CHAIN)
    signers = sorted(KEYS[i].public_key for i in (0, 2, 3))
    assert [s.validator for s in cert.signatures] == signers
    assert CommitCertificate.from_bytes(cert.to_bytes()) == cert


def test_certificate_below_quorum_fails() -> None:
    with pytest.raises(CertificateInvalid, match="quorum"):
        _certificate([0, 1]).verify(VSET, CHAIN)


def test_certificate_counts_power_not_heads() -> None:
    weighted = validator_set_of(KEYS, [10, 1, 1, 1])  # total 13, quorum 9
    _certificate([0]).verify(weighted, CHAIN)
    with pytest.raises(CertificateInvalid):
        _certificate([1, 2, 3]).verify(weighted, CHAIN)


def test_certificate_from_another_chain_or_set_fails() -> None:
    with pytest.raises(CertificateInvalid, match="signature"):
        _certificate([0, 1, 2], chain="other-chain").verify(VSET, CHAIN)
    outsiders = validator_set_of(keypairs(4, tag=b"other"))
    with pytest.raises(CertificateInvalid, match="not in the set"):
        _certificate([0, 1, 2]).verify(outsiders, CHAIN)


def test_certificate_with_a_forged_signature_fails() -> None:
    cert = _certificate([0, 1, 2])
    bad = CommitSignature(cert.signatures[0].validator, cert.signatures[1].signature)
    forged = CommitCertificate(cert.height, cert.round, cert.block_hash, (bad, *cert.signatures[1:]))
    with pytest.raises(CertificateInvalid, match="signature"):
        forged.verify(VSET, CHAIN)


def test_certificate_rejects_duplicate_signers_and_nil() -> None:
    cert = _certificate([0, 1, 2])
    with pytest.raises(MessageInvalid):
        CommitCertificate(cert.height, cert.round, cert.block_hash, (cert.signatures[0],) * 3)
    nil_votes = [sign_vote(KEYS[i], CHAIN, VoteKind.PRECOMMIT, 7, 1, None) for i in range(3)]
    with pytest.raises(MessageInvalid, match="nil"):
        CommitCertificate.from_precommits(nil_votes)


def test_certificate_precommits_are_the_signed_votes() -> None:
    cert = _certificate([0, 1, 2])
    for vote in cert.precommits():
        assert vote.kind is VoteKind.PRECOMMIT and vote.is_signature_valid(CHAIN)

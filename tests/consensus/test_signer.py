"""consensus.signer: one signature per (height, round, step), persisted before it is released."""

from __future__ import annotations

import pytest

from consensus.errors import MessageInvalid
from consensus.signer import NO_LOCK, Lock, MemorySignerGuard, SignedState, Signer
from consensus.testing import keypairs
from consensus.types import Step

KEY = keypairs(1)[0]
B = b"\x0b" * 32


def test_signs_increasing_positions_and_persists_each() -> None:
    guard = MemorySignerGuard()
    signer = Signer(KEY, guard)
    positions = [
        (1, 0, Step.PROPOSE),
        (1, 0, Step.PREVOTE),
        (1, 0, Step.PRECOMMIT),
        (1, 3, Step.PREVOTE),
        (2, 0, Step.PREVOTE),
    ]
    for i, (h, r, s) in enumerate(positions):
        sig = signer.sign(h, r, s, b"msg%d" % i, NO_LOCK)
        assert sig == KEY.sign(b"msg%d" % i)
        stored = guard.load()
        assert stored is not None and stored.position == (h, r, s) and stored.signature == sig
    assert guard.stores == len(positions)


def test_refuses_a_step_before_the_last_signed() -> None:
    signer = Signer(KEY, MemorySignerGuard())
    assert signer.sign(3, 2, Step.PREVOTE, b"a", NO_LOCK) is not None
    assert signer.sign(3, 2, Step.PROPOSE, b"b", NO_LOCK) is None
    assert signer.sign(3, 1, Step.PRECOMMIT, b"c", NO_LOCK) is None
    assert signer.sign(2, 9, Step.PRECOMMIT, b"d", NO_LOCK) is None


def test_same_step_same_bytes_returns_the_same_signature_and_other_bytes_are_refused() -> None:
    guard = MemorySignerGuard()
    signer = Signer(KEY, guard)
    first = signer.sign(1, 0, Step.PREVOTE, b"vote for B", NO_LOCK)
    assert signer.sign(1, 0, Step.PREVOTE, b"vote for B", NO_LOCK) == first
    assert signer.sign(1, 0, Step.PREVOTE, b"vote for nil", NO_LOCK) is None
    assert guard.stores == 1


def test_a_restarted_signer_keeps_refusing_what_it_signed_before_the_crash() -> None:
    guard = MemorySignerGuard()
    Signer(KEY, guard).sign(5, 1, Step.PRECOMMIT, b"precommit B", Lock(1, B))
    again = Signer(KEY, guard)
    assert again.sign(5, 1, Step.PRECOMMIT, b"precommit nil", NO_LOCK) is None
    assert again.sign(5, 1, Step.PREVOTE, b"prevote nil", NO_LOCK) is None
    assert again.restored_lock(5) == (1, Lock(1, B))
    assert again.restored_lock(6) == (0, NO_LOCK)


class FailingGuard(MemorySignerGuard):
    def store(self, state: SignedState) -> None:
        raise OSError("disk full")


def test_no_signature_is_released_when_the_guard_cannot_persist() -> None:
    signer = Signer(KEY, FailingGuard())
    with pytest.raises(OSError):
        signer.sign(1, 0, Step.PREVOTE, b"x", NO_LOCK)
    assert signer.last_signed is None


def test_signed_state_round_trips_and_rejects_garbage() -> None:
    state = SignedState(4, 2, Step.PRECOMMIT, b"bytes", b"\x01" * 64, Lock(2, B))
    assert SignedState.from_bytes(state.to_bytes()) == state
    wire = state.to_wire()
    # locked_round -1 with a block hash is a lock with a block but no round
    for field, bad in [("step", 3), ("locked_round", -1), ("locked_block_hash", b"\x00"), ("height", 0)]:
        with pytest.raises(MessageInvalid):
            SignedState.from_wire({**wire, field: bad})

"""The durable double-sign guard and the consensus WAL, across simulated restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from consensus.signer import NO_LOCK, Lock, Signer
from consensus.signer_guard import ConsensusWAL, FileSignerGuard
from consensus.types import Step, VoteKind, vote_sign_bytes
from ledger.crypto import Keypair

CHAIN = "hearth-guard-test"
KEY = Keypair.from_seed(b"\x05" * 32)
BLOCK_A, BLOCK_B = b"\xaa" * 32, b"\xbb" * 32


def prevote_bytes(height: int, round: int, block: bytes | None) -> bytes:
    return vote_sign_bytes(CHAIN, VoteKind.PREVOTE, height, round, block, KEY.public_key)


def restarted(path: Path) -> Signer:
    """A fresh signer over the same file: what a node has after a crash and restart."""
    return Signer(KEY, FileSignerGuard(path))


def test_guard_refuses_conflicting_signature_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "signer.json"
    first = restarted(path)
    signature = first.sign(5, 0, Step.PREVOTE, prevote_bytes(5, 0, BLOCK_A), NO_LOCK)
    assert signature is not None

    again = restarted(path)
    assert again.sign(5, 0, Step.PREVOTE, prevote_bytes(5, 0, BLOCK_B), NO_LOCK) is None
    assert again.sign(5, 0, Step.PREVOTE, prevote_bytes(5, 0, None), NO_LOCK) is None
    assert again.sign(5, 0, Step.PROPOSE, b"an earlier step", NO_LOCK) is None
    assert again.sign(4, 9, Step.PRECOMMIT, b"an earlier height", NO_LOCK) is None
    # The identical message is re-signed (a restarted node may resend its vote): same signature.
    assert again.sign(5, 0, Step.PREVOTE, prevote_bytes(5, 0, BLOCK_A), NO_LOCK) == signature
    assert again.sign(5, 1, Step.PREVOTE, prevote_bytes(5, 1, BLOCK_B), NO_LOCK) is not None


def test_guard_is_durable_before_the_signature_is_released(tmp_path: Path) -> None:
    path = tmp_path / "signer.json"
    signer = restarted(path)
    lock = Lock(0, BLOCK_A)
    signer.sign(7, 2, Step.PRECOMMIT, b"precommit bytes", lock)
    stored = FileSignerGuard(path).load()
    assert stored is not None and stored.position == (7, 2, Step.PRECOMMIT) and stored.lock == lock
    assert restarted(path).restored_lock(7) == (2, lock)
    assert not (tmp_path / "signer.json.tmp").exists()


def test_guard_refuses_to_start_from_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "signer.json"
    path.write_bytes(b"\x00not a signed state")
    with pytest.raises(RuntimeError, match="refusing to sign"):
        restarted(path)


def test_wal_replays_in_order_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    wal = ConsensusWAL(tmp_path)
    assert wal.replay() == []
    wal.append(3, "vote", {"n": 1})
    wal.append(3, "block", b"\x01" * 100)
    wal.append(4, "vote", {"n": 2})
    wal.close()
    with open(wal.path, "ab") as f:
        f.write(b"\x00\x00\x01\x00torn")
    again = ConsensusWAL(tmp_path)
    assert again.replay() == [(3, "vote", {"n": 1}), (3, "block", b"\x01" * 100), (4, "vote", {"n": 2})]
    again.append(4, "vote", {"n": 3})
    again.committed(3)
    again.close()
    assert ConsensusWAL(tmp_path).replay() == [(4, "vote", {"n": 2}), (4, "vote", {"n": 3})]


def test_wal_stops_at_a_corrupt_record(tmp_path: Path) -> None:
    wal = ConsensusWAL(tmp_path)
    wal.replay()
    wal.append(1, "vote", 1)
    wal.append(1, "vote", 2)
    wal.close()
    data = bytearray(wal.path.read_bytes())
    data[-1] ^= 0xFF  # the CRC of the second record no longer matches
    wal.path.write_bytes(bytes(data))
    assert ConsensusWAL(tmp_path).replay() == [(1, "vote", 1)]

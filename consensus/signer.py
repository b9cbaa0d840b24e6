"""The validator's signer and the guard that stops it from ever signing two conflicting messages.

A validator signs at most one message per (height, round, step), and never one at a (height,
round, step) before the last it signed. The guard state is written durably *before* the signature
leaves the signer, so a crash at any point cannot lead to a second, different signature for the
same step after restart: that is the whole defence against accidental equivocation.

The guard also holds the validator's lock (the paper's lockedRound/lockedValue, which change only
together with a precommit). A restarted engine restores it, so a crash cannot make an honest
validator forget the lock that the safety argument relies on.

`SignerGuard` is the persistence interface. The node implements it on disk (consensus/signer_guard.py);
`MemorySignerGuard` is for tests and the simulator, where "disk" survives a simulated crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from consensus._wire import WireMessage, expect_bytes, expect_int, expect_map, expect_optional_bytes
from consensus.constants import HASH_BYTES, MAX_HEIGHT, MAX_ROUND, SIGNATURE_BYTES
from consensus.errors import MessageInvalid
from consensus.types import Step
from ledger.crypto import Keypair

__all__ = ["Lock", "NO_LOCK", "SignedState", "SignerGuard", "MemorySignerGuard", "Signer"]

_MAX_SIGN_BYTES = 1024


@dataclass(frozen=True)
class Lock:
    """The engine's lock within a height: round -1 and no hash when unlocked."""

    round: int
    block_hash: bytes | None

    def __post_init__(self) -> None:
        expect_int(self.round, "lock.round", -1, MAX_ROUND)
        expect_optional_bytes(self.block_hash, "lock.block_hash", HASH_BYTES)
        if (self.round == -1) != (self.block_hash is None):
            raise MessageInvalid("lock: a round without a block, or a block without a round")


NO_LOCK = Lock(-1, None)


@dataclass(frozen=True)
class SignedState(WireMessage):
    """What the guard persists: the last signed step, its exact sign bytes and signature (so the
    identical message can be re-signed after a restart), and the lock held at that moment."""

    height: int
    round: int
    step: Step
    sign_bytes: bytes
    signature: bytes
    lock: Lock

    def __post_init__(self) -> None:
        expect_int(self.height, "signed state.height", 1, MAX_HEIGHT)
        expect_int(self.round, "signed state.round", 0, MAX_ROUND)
        if not isinstance(self.step, Step):
            raise MessageInvalid("signed state.step: expected a Step")
        if not isinstance(self.sign_bytes, bytes) or len(self.sign_bytes) > _MAX_SIGN_BYTES:
            raise MessageInvalid("signed state.sign_bytes: bytes up to 1 KiB")
        expect_bytes(self.signature, "signed state.signature", SIGNATURE_BYTES)
        if not isinstance(self.lock, Lock):
            raise MessageInvalid("signed state.lock: expected a Lock")

    @property
    def position(self) -> tuple[int, int, Step]:
        return (self.height, self.round, self.step)

    def to_wire(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "step": int(self.step),
            "sign_bytes": self.sign_bytes,
            "signature": self.signature,
            "locked_round": self.lock.round,
            "locked_block_hash": self.lock.block_hash,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> SignedState:
        keys = frozenset(
            {"height", "round", "step", "sign_bytes", "signature", "locked_round", "locked_block_hash"}
        )
        m = expect_map(obj, keys, "signed state")
        step = Step(expect_int(m["step"], "signed state.step", Step.PROPOSE, Step.PRECOMMIT))
        lock = Lock(m["locked_round"], m["locked_block_hash"])
        return cls(m["height"], m["round"], step, m["sign_bytes"], m["signature"], lock)


class SignerGuard(Protocol):
    """Durable storage of the last `SignedState`.

    `store` must not return until the state is durable (written and synced to disk): the signature is
    released only after it returns. `load` returns what the last completed `store` wrote, or None
    if nothing was ever signed.
    """

    def load(self) -> SignedState | None: ...

    def store(self, state: SignedState) -> None: ...


class MemorySignerGuard:
    """A `SignerGuard` in memory, for tests and the simulator (it outlives a simulated crash)."""

    def __init__(self) -> None:
        self._state: SignedState | None = None
        self.stores = 0

    def load(self) -> SignedState | None:
        return self._state

    def store(self, state: SignedState) -> None:
        self._state = state
        self.stores += 1


class Signer:
    """Signs consensus sign bytes for one validator, through its guard."""

    def __init__(self, keypair: Keypair, guard: SignerGuard) -> None:
        self._keypair = keypair
        self._guard = guard
        self._last = guard.load()
        self.address = keypair.public_key

    @property
    def last_signed(self) -> SignedState | None:
        return self._last

    def sign(
        self, height: int, round: int, step: Step, sign_bytes: bytes, lock: Lock
    ) -> bytes | None:
        """The signature of `sign_bytes` as the message of (height, round, step), or None when
        signing could conflict with what was signed before: a step before the last signed one, or
        the same step with other bytes. The same step with the same bytes returns the stored
        signature (a restarted node may resend its vote)."""
        position = (height, round, step)
        last = self._last
        if last is not None:
            if position < last.position:
                return None
            if position == last.position:
                return last.signature if sign_bytes == last.sign_bytes else None
        signature = self._keypair.sign(sign_bytes)
        state = SignedState(height, round, step, sign_bytes, signature, lock)
        self._guard.store(state)  # durable before the signature is released
        self._last = state
        return signature

    def restored_lock(self, height: int) -> tuple[int, Lock]:
        """Where a (re)starting engine resumes at `height`: the round last signed in and the lock
        held then, or round 0 and no lock if nothing was signed at this height."""
        last = self._last
        if last is None or last.height != height:
            return 0, NO_LOCK
        return last.round, last.lock

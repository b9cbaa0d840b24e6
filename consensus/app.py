"""What the consensus engine needs from the application: a small, synchronous, deterministic interface.

The engine treats a block as opaque bytes named by a 32-byte hash; only the application knows what
is inside. Determinism is required (specs/consensus.md, rule APP-1): for the same committed chain,
every correct node's application must give the same answers, or correct nodes could disagree on
whether a block is valid and lose liveness.
"""

from __future__ import annotations

from typing import Protocol

from consensus.types import ValidatorSet

__all__ = ["Application"]


class Application(Protocol):
    def validator_set(self, height: int) -> ValidatorSet:
        """The validators of `height`. Called when the engine starts `height`, after the block of
        `height - 1` was committed and applied, so it may depend on that block."""
        ...

    def propose_block(self, height: int, round: int, time_ms: int) -> tuple[bytes, bytes]:
        """A new block for `height` built on the committed chain: (block bytes, block hash).
        `time_ms` is the proposer's clock; the application keeps block time strictly increasing."""
        ...

    def block_hash(self, block: bytes) -> bytes | None:
        """The 32-byte hash that names `block`, or None if the bytes are not a block at all."""
        ...

    def validate_block(self, height: int, block: bytes) -> bool:
        """True iff `block` is a valid block for `height` on top of the committed chain: the
        paper's valid(v). Must be deterministic and must not change the application's state."""
        ...

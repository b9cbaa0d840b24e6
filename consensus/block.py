"""The Hearth block: a header, transactions and evidence. Its hash is sha256 of the canonical header.

The header commits to everything else in the block: `txs_hash` and `evidence_hash` are Merkle
roots (RFC 6962 shape) of the transactions and of the encoded evidence, so one 32-byte hash, the
one validators vote for, names the whole block. A `Block` checks on construction that its header's
roots match its body, so a `Block` object is never internally inconsistent. Whether the block is
valid on the chain (height follows, time increases, state root right) is the application's check.
"""

from __future__ import annotations

import hashlib

from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, ClassVar

from consensus._wire import (
    WireMessage,
    expect_bytes,
    expect_int,
    expect_list,
    expect_map,
    expect_tuple_of,
)
from consensus.constants import ADDRESS_BYTES, HASH_BYTES, MAX_HEIGHT
from consensus.errors import MessageInvalid
from consensus.evidence import DuplicateVoteEvidence
from consensus.types import validate_chain_id
from ledger.constants import MAX_TX_BYTES, MAX_TXS_PER_BLOCK
from ledger.crypto import sha256

__all__ = [
    "Header",
    "Block",
    "merkle_root",
    "GENESIS_PREV_HASH",
    "MAX_BLOCK_BYTES",
    "MAX_EVIDENCE_PER_BLOCK",
]

GENESIS_PREV_HASH = bytes(HASH_BYTES)
"""`prev_block_hash` of the block at height 1."""

MAX_BLOCK_BYTES = 4 << 20
"""Largest encoded block. Bounds what a proposer may ask every validator to download and check."""

MAX_EVIDENCE_PER_BLOCK = 64

_MAX_TIME_MS = 2**63 - 1


def merkle_root(leaves: list[bytes] | tuple[bytes, ...]) -> bytes:
    """RFC 6962 Merkle tree hash: leaves hashed with prefix 0x00, inner nodes with 0x01, the split
    at the largest power of two below the count; the empty tree is sha256(b"")."""
    if not leaves:
        return sha256(b"")
    h = hashlib.sha256
    level = [h(b"\x00" + leaf).digest() for leaf in leaves]
    # Bottom up, each pair of nodes hashed in order and a last node without a pair carried up as it
    # is: the same tree as the split at the largest power of two below the count, level by level
    # (tests/consensus/test_block.py checks it against that recursion), without a call per node.
    while len(level) > 1:
        pairs = [h(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            pairs.append(level[-1])
        level = pairs
    return level[0]


def txs_root(txs: tuple[bytes, ...]) -> bytes:
    """`merkle_root` of a block's transactions. The last tuple's root is remembered, by identity (a
    tuple of bytes never changes): a block made by `Block.build` checks its header against the root
    `build` has just computed, and a proposer's block would hash its thousands of transactions twice."""
    last_txs, last_root = _LAST_TXS_ROOT
    if txs is last_txs:
        return last_root
    root = merkle_root(txs)
    if type(txs) is tuple:  # not a list, which could change under the same identity
        _LAST_TXS_ROOT[:] = (txs, root)
    return root


_LAST_TXS_ROOT: list[Any] = [None, b""]
"""The last (transactions, root) of `txs_root`."""


def evidence_root(evidence: tuple[DuplicateVoteEvidence, ...]) -> bytes:
    return merkle_root([e.to_bytes() for e in evidence])


@dataclass(frozen=True)
class Header(WireMessage):
    chain_id: str
    height: int
    time_ms: int
    """The proposer's clock, milliseconds since the Unix epoch (rules in specs: Block time)."""
    prev_block_hash: bytes
    txs_hash: bytes
    evidence_hash: bytes
    state_root: bytes
    """The ledger state root after applying this block."""
    proposer: bytes
    """Address of the validator that built the block (which may differ from the proposer of the
    round that decides it, when a locked block is proposed again)."""
    validators_hash: bytes
    """Hash of the validator set of this height."""

    _HASH_FIELDS: ClassVar[tuple[str, ...]] = (
        "prev_block_hash",
        "txs_hash",
        "evidence_hash",
        "state_root",
        "validators_hash",
    )

    def __post_init__(self) -> None:
        try:
            validate_chain_id(self.chain_id)
        except MessageInvalid as exc:
            raise MessageInvalid(f"header.{exc}") from None
        expect_int(self.height, "header.height", 1, MAX_HEIGHT)
        expect_int(self.time_ms, "header.time_ms", 0, _MAX_TIME_MS)
        for name in self._HASH_FIELDS:
            expect_bytes(getattr(self, name), f"header.{name}", HASH_BYTES)
        expect_bytes(self.proposer, "header.proposer", ADDRESS_BYTES)

    @cached_property
    def hash(self) -> bytes:
        """The block hash: sha256 of the canonical msgpack of the header."""
        return sha256(self.to_bytes())

    def to_wire(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "time_ms": self.time_ms,
            "prev_block_hash": self.prev_block_hash,
            "txs_hash": self.txs_hash,
            "evidence_hash": self.evidence_hash,
            "state_root": self.state_root,
            "proposer": self.proposer,
            "validators_hash": self.validators_hash,
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Header:
        m = expect_map(obj, frozenset(f.name for f in fields(cls)), "header")
        return cls(**m)


@dataclass(frozen=True)
class Block(WireMessage):
    header: Header
    txs: tuple[bytes, ...]
    """Encoded transactions, opaque here; the ledger decodes them."""
    evidence: tuple[DuplicateVoteEvidence, ...]

    max_wire_bytes: ClassVar[int] = MAX_BLOCK_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.header, Header):
            raise MessageInvalid("block.header: expected a Header")
        expect_tuple_of(self.txs, bytes, "block.txs", 0, MAX_TXS_PER_BLOCK)
        for tx in self.txs:
            if not 1 <= len(tx) <= MAX_TX_BYTES:
                raise MessageInvalid(f"block.txs: each transaction is 1 to {MAX_TX_BYTES} bytes")
        expect_tuple_of(
            self.evidence, DuplicateVoteEvidence, "block.evidence", 0, MAX_EVIDENCE_PER_BLOCK
        )
        for ev in self.evidence:
            if ev.height >= self.header.height:
                raise MessageInvalid("block.evidence: evidence must be from an earlier height")
        if txs_root(self.txs) != self.header.txs_hash:
            raise MessageInvalid("block: header.txs_hash does not match the transactions")
        if evidence_root(self.evidence) != self.header.evidence_hash:
            raise MessageInvalid("block: header.evidence_hash does not match the evidence")

    @classmethod
    def build(
        cls,
        *,
        chain_id: str,
        height: int,
        time_ms: int,
        prev_block_hash: bytes,
        state_root: bytes,
        proposer: bytes,
        validators_hash: bytes,
        txs: tuple[bytes, ...] = (),
        evidence: tuple[DuplicateVoteEvidence, ...] = (),
    ) -> Block:
        """A block whose header roots are computed from `txs` and `evidence`."""
        header = Header(
            chain_id=chain_id,
            height=height,
            time_ms=time_ms,
            prev_block_hash=prev_block_hash,
            txs_hash=txs_root(txs),
            evidence_hash=evidence_root(evidence),
            state_root=state_root,
            proposer=proposer,
            validators_hash=validators_hash,
        )
        return cls(header, txs, evidence)

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def to_wire(self) -> dict[str, Any]:
        return {
            "header": self.header.to_wire(),
            "txs": list(self.txs),
            "evidence": [e.to_wire() for e in self.evidence],
        }

    @classmethod
    def from_wire(cls, obj: Any) -> Block:
        m = expect_map(obj, frozenset({"header", "txs", "evidence"}), "block")
        txs = expect_list(m["txs"], "block.txs", MAX_TXS_PER_BLOCK)
        evidence = expect_list(m["evidence"], "block.evidence", MAX_EVIDENCE_PER_BLOCK)
        return cls(
            Header.from_wire(m["header"]),
            tuple(txs),
            tuple(DuplicateVoteEvidence.from_wire(e) for e in evidence),
        )

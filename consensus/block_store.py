"""Committed blocks, their commit certificates and indexes, in the ledger's store.

Nothing here writes on its own: `commit_records` returns the records of one block, and the node
passes them to `LedgerDB.commit(executed, extra=...)`, so the block, its certificate, its indexes
and the state it produces land in ONE atomic batch with one fsync. After a crash the store holds
a block exactly when it holds the state after it.

Keys (h8 is a height as 8 bytes big-endian, i4 an index as 4 bytes):

    blk/   h8                  -> the block (canonical msgpack of consensus.block.Block)
    hdr/   h8                  -> its header alone (cheap reads of hash, time, validators_hash)
    cert/  h8                  -> its commit certificate (consensus.types.CommitCertificate)
    bhash/ block hash          -> h8
    txloc/ tx hash             -> h8 i4                      (the transaction's block and position)
    acct/  address (2^64-1-h)8 i4 -> tx hash                 (newest height first when iterated)
    evd/   sha256(evidence)    -> h8                         (evidence already committed)
    vset/  validator set hash  -> msgpack [[address, name, stake], ...] (the set, as the ledger had it)
    txidx/from                 -> h8                         (txloc/ and acct/ hold every block from
                                                              this height on; 2^64-1: not kept now;
                                                              absent: from height 1)

`txloc/` and `acct/` are the transaction indexes, for queries only (RPC `tx`, `account_txs`): a node
with `tx_index.enabled` false writes neither (`configure_tx_index`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from consensus.block import Block, Header
from consensus.evidence import DuplicateVoteEvidence
from consensus.types import CommitCertificate, ValidatorSet
from consensus.node_services import tx_addresses
from ledger.constants import UNITS_PER_COIN
from ledger.crypto import sha256
from ledger.encoding import decode
from ledger.store import Store
from ledger.tx import Tx

__all__ = ["BlockStore", "ValidatorInfo", "validator_set_of"]

BLOCK = b"blk/"
HEADER = b"hdr/"
CERTIFICATE = b"cert/"
BLOCK_HASH = b"bhash/"
TX_LOCATION = b"txloc/"
ACCOUNT_TX = b"acct/"
EVIDENCE = b"evd/"
VALIDATOR_SET = b"vset/"
TX_INDEX_FROM = b"txidx/from"
_TX_INDEX_OFF = 2**64 - 1

_MAX_HEIGHT_KEY = 2**64 - 1


def h8(height: int) -> bytes:
    return height.to_bytes(8, "big")


@dataclass(frozen=True)
class ValidatorInfo:
    address: bytes
    name: str
    stake: int

    @property
    def power(self) -> int:
        return self.stake // UNITS_PER_COIN

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address.hex(), "name": self.name, "stake": self.stake, "power": self.power}


def validator_set_of(infos: Iterable[ValidatorInfo]) -> ValidatorSet:
    """The consensus set: validators with voting power (stake below one coin votes with none)."""
    return ValidatorSet.from_powers({v.address: v.power for v in infos if v.power > 0})


def evidence_id(evidence: DuplicateVoteEvidence) -> bytes:
    return sha256(evidence.to_bytes())


class BlockStore:
    def __init__(self, store: Store) -> None:
        self._store = store
        self.tx_index_from: int | None = 1
        """The first height from which the transaction indexes hold every block, or None when
        this node keeps none (set by `configure_tx_index`; 1 until then, as every store had them)."""

    def configure_tx_index(self, enabled: bool, head_height: int) -> int | None:
        """At a node's start: keep the transaction indexes or not, recorded in the store so that a
        later start knows which blocks they cover. Turned on again after a time off, they cover
        the blocks after `head_height`. Returns `tx_index_from`."""
        stored = self._store.get(TX_INDEX_FROM)
        since = 1 if stored is None else int.from_bytes(stored, "big")
        if not enabled:
            if since != _TX_INDEX_OFF:
                self._store.write_batch({TX_INDEX_FROM: h8(_TX_INDEX_OFF)})
            self.tx_index_from = None
        else:
            if since == _TX_INDEX_OFF:
                since = head_height + 1
                self._store.write_batch({TX_INDEX_FROM: h8(since)})
            self.tx_index_from = since
        return self.tx_index_from

    # writes (as records for the ledger's batch) -------------------------------------------------------
    def commit_records(
        self,
        block: Block,
        block_bytes: bytes,
        certificate: CommitCertificate,
        validators: tuple[ValidatorInfo, ...],
        txs: list[Tx],
    ) -> dict[bytes, bytes]:
        height = block.header.height
        records = {
            BLOCK + h8(height): block_bytes,
            HEADER + h8(height): block.header.to_bytes(),
            CERTIFICATE + h8(height): certificate.to_bytes(),
            BLOCK_HASH + block.hash: h8(height),
        }
        set_key = VALIDATOR_SET + block.header.validators_hash
        if self._store.get(set_key) is None:
            records[set_key] = msgpack.packb([[v.address, v.name, v.stake] for v in validators], use_bin_type=True)
        if self.tx_index_from is None:
            txs = []  # no transaction indexes on this node
        at_height, newest_height = h8(height), h8(_MAX_HEIGHT_KEY - height)
        for index, tx in enumerate(txs):
            position, tx_hash = index.to_bytes(4, "big"), tx.hash
            records[TX_LOCATION + tx_hash] = at_height + position
            newest_first = newest_height + position
            for address in tx_addresses(tx):
                records[ACCOUNT_TX + address + newest_first] = tx_hash
        for evidence in block.evidence:
            records[EVIDENCE + evidence_id(evidence)] = h8(height)
        return records

    # reads ----------------------------------------------------------------------------------------------
    def block_bytes(self, height: int) -> bytes | None:
        return self._store.get(BLOCK + h8(height))

    def block(self, height: int) -> Block | None:
        data = self.block_bytes(height)
        return None if data is None else Block.from_bytes(data)

    def header(self, height: int) -> Header | None:
        data = self._store.get(HEADER + h8(height))
        return None if data is None else Header.from_bytes(data)

    def block_hash(self, height: int) -> bytes | None:
        header = self.header(height)
        return None if header is None else header.hash

    def certificate_bytes(self, height: int) -> bytes | None:
        return self._store.get(CERTIFICATE + h8(height))

    def certificate(self, height: int) -> CommitCertificate | None:
        data = self.certificate_bytes(height)
        return None if data is None else CommitCertificate.from_bytes(data)

    def height_of(self, block_hash: bytes) -> int | None:
        data = self._store.get(BLOCK_HASH + block_hash)
        return None if data is None else int.from_bytes(data, "big")

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """Where the transaction was committed, if the indexes as they stand cover it: a record
        left from before a time without indexes is not served, or a lookup's answer would depend on
        which part of the chain the indexes happened to hold."""
        data = self._store.get(TX_LOCATION + tx_hash)
        if data is None:
            return None
        height = int.from_bytes(data[:8], "big")
        if self.tx_index_from is None or height < self.tx_index_from:
            return None
        return height, int.from_bytes(data[8:], "big")

    def account_tx_hashes(self, address: bytes, limit: int, before: tuple[int, int] | None) -> list[bytes]:
        """Hashes of up to `limit` transactions naming `address`, newest first, each at a (height,
        index) strictly before `before` (None: from the head down), none below `tx_index_from`
        (the history has no hole: it ends where the indexes stop covering every block)."""
        out: list[bytes] = []
        since = self.tx_index_from
        if since is None:
            return out
        for key, tx_hash in self._store.iterate(ACCOUNT_TX + address):
            position = (_MAX_HEIGHT_KEY - int.from_bytes(key[-12:-4], "big"), int.from_bytes(key[-4:], "big"))
            if position[0] < since:
                break  # newest first: all the rest are older
            if before is not None and position >= before:
                continue
            out.append(tx_hash)
            if len(out) >= limit:
                break
        return out

    def has_evidence(self, evidence: DuplicateVoteEvidence) -> bool:
        return self._store.get(EVIDENCE + evidence_id(evidence)) is not None

    def validators(self, set_hash: bytes) -> tuple[ValidatorInfo, ...] | None:
        data = self._store.get(VALIDATOR_SET + set_hash)
        if data is None:
            return None
        return tuple(ValidatorInfo(a, n, s) for a, n, s in decode(data, 1 << 20))

    def validators_at(self, height: int) -> tuple[ValidatorInfo, ...] | None:
        """The validator set that signed the committed block at `height`."""
        header = self.header(height)
        return None if header is None else self.validators(header.validators_hash)

"""A chain as a node would store it, built without a network: blocks executed by a LedgerDB,
certified by test validator keys, committed with BlockStore.commit_records in the same batch.

Also `ListSource`, a BlockSource over SourceBlocks built by hand, for blocks that validators
certified but that are wrong (a forged state root, a bad transaction signature): a node would
never store them, yet an auditor must catch them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cli.audit.sources import SourceBlock, StoreBlockSource, slashes_of
from consensus.block_json import block_to_json
from consensus.block import GENESIS_PREV_HASH, Block
from consensus.block_store import BlockStore, ValidatorInfo, validator_set_of
from consensus.evidence import DuplicateVoteEvidence
from consensus.testing import sign_vote
from consensus.types import CommitCertificate, VoteKind
from ledger import BlockInput, Genesis, LedgerDB, MemoryStore
from ledger.crypto import Keypair, sha256
from ledger.records import Validator
from ledger.state import STATE_PREFIX, decode_record
from tests.ledger.helpers import (
    CHAIN_ID,
    PERIOD_MS,
    community_genesis,
    key,
    member_add_tx,
    signed_tx,
    council_tx,
    transfer_tx,
)

COIN = 1_000_000
VALIDATORS = (20, 21, 22, 23)
"""Key indices of the test validators, 10 coins of stake each (power 10)."""


def audit_genesis() -> Genesis:
    return community_genesis(
        north=(1, 2, 3),
        south=(4,),
        units=(("a", 2), ("b", 1)),
        housing_fee=5,
        validators={i: 10 * COIN for i in VALIDATORS},
        commons_pool=50 * COIN,
    )


@dataclass
class ChainBuilder:
    genesis: Genesis
    store: Any = field(default_factory=MemoryStore)

    def __post_init__(self) -> None:
        self.ledger = LedgerDB(self.store, self.genesis)
        self.block_store = BlockStore(self.store)
        self.keys: dict[bytes, Keypair] = {key(i).public_key: key(i) for i in range(1, 100)}
        self.prev_hash = GENESIS_PREV_HASH
        self.sources: list[SourceBlock] = []

    def validator_infos(self) -> tuple[ValidatorInfo, ...]:
        prefix = STATE_PREFIX + Validator.PREFIX
        out = []
        for k, data in self.store.iterate(prefix):
            record = decode_record(k[len(STATE_PREFIX):], data)
            out.append(ValidatorInfo(k[len(prefix):], record.name, record.stake))
        return tuple(out)

    def certify(self, block_hash: bytes, height: int, signers: Sequence[bytes] | None = None) -> CommitCertificate:
        vset = validator_set_of(self.validator_infos())
        addresses = [v.address for v in vset.validators] if signers is None else signers
        votes = [sign_vote(self.keys[a], CHAIN_ID, VoteKind.PRECOMMIT, height, 0, block_hash) for a in addresses]
        return CommitCertificate.from_precommits(votes)

    def add_block(
        self, txs: Sequence[bytes] = (), *, time_step_ms: int = 1_000, evidence: tuple[DuplicateVoteEvidence, ...] = ()
    ) -> Block:
        head = self.ledger.head
        height, time_ms = head.height + 1, head.time_ms + time_step_ms
        infos = self.validator_infos()
        vset = validator_set_of(infos)
        slashes = slashes_of(e.validator for e in evidence)
        executed = self.ledger.execute(BlockInput(height, time_ms, tuple(txs), slashes))
        assert len(executed.txs) == len(txs)
        block = Block.build(
            chain_id=CHAIN_ID,
            height=height,
            time_ms=time_ms,
            prev_block_hash=self.prev_hash,
            state_root=executed.state_root,
            proposer=vset.validators[0].address,
            validators_hash=vset.hash,
            txs=tuple(txs),
            evidence=evidence,
        )
        certificate = self.certify(block.hash, height)
        data = block.to_bytes()
        records = self.block_store.commit_records(block, data, certificate, infos, executed.txs)
        self.ledger.commit(executed, extra=records)
        self.prev_hash = block.hash
        self.sources.append(SourceBlock(height, block.header, block.txs, slashes, block.evidence, certificate))
        return block

    def forged_block(
        self,
        txs: Sequence[bytes] = (),
        *,
        state_root: bytes | None = None,
        time_step_ms: int = 1_000,
        evidence: tuple[DuplicateVoteEvidence, ...] = (),
    ) -> SourceBlock:
        """The next block, certified by every validator, with whatever state root it is given
        (default: the current one) and never executed here."""
        head = self.ledger.head
        height = head.height + 1
        vset = validator_set_of(self.validator_infos())
        block = Block.build(
            chain_id=CHAIN_ID,
            height=height,
            time_ms=head.time_ms + time_step_ms,
            prev_block_hash=self.prev_hash,
            state_root=self.ledger.state_root if state_root is None else state_root,
            proposer=vset.validators[0].address,
            validators_hash=vset.hash,
            txs=tuple(txs),
            evidence=evidence,
        )
        slashes = slashes_of(e.validator for e in evidence)
        return SourceBlock(height, block.header, block.txs, slashes, evidence, self.certify(block.hash, height))

    def equivocation(self, validator: int, height: int) -> DuplicateVoteEvidence:
        kp = key(validator)
        a = sign_vote(kp, CHAIN_ID, VoteKind.PREVOTE, height, 0, sha256(b"a"))
        b = sign_vote(kp, CHAIN_ID, VoteKind.PREVOTE, height, 0, sha256(b"b"))
        return DuplicateVoteEvidence.from_votes(a, b)

    def source(self) -> StoreBlockSource:
        return StoreBlockSource(self.store, self.genesis, "test store")


@dataclass
class ListSource:
    genesis: Genesis
    items: list[SourceBlock]

    def head_height(self) -> int:
        return len(self.items)

    def blocks(self, from_height: int = 1) -> Iterator[SourceBlock]:
        yield from self.items[from_height - 1 :]

    def describe(self) -> str:
        return "test list"

    def close(self) -> None:
        pass


def economy_chain(builder: ChainBuilder | None = None, periods: int = 4) -> ChainBuilder:
    """A few periods of an economy: transfers, a new member, a home, quota use, one slash."""
    b = builder or ChainBuilder(audit_genesis())
    b.add_block([member_add_tx(5, 0)])
    b.add_block([transfer_tx(1, 6, 100_000, 0), transfer_tx(2, 7, 50_000, 0)])
    b.add_block([signed_tx("housing_apply", 1, 1, household=2, needs=0), signed_tx("housing_apply", 2, 1, household=1, needs=0)])
    b.add_block([signed_tx("quota_consume", 50, 0, member=key(1).address, resource="water", amount=100)], time_step_ms=PERIOD_MS)
    b.add_block([signed_tx("housing_apply", 3, 0, household=1, needs=0)])
    b.add_block([unit_add(1, "c", 1)], time_step_ms=PERIOD_MS)
    b.add_block([], evidence=(b.equivocation(VALIDATORS[3], 2),))
    nonce = 1
    for _ in range(periods - 2):
        b.add_block([transfer_tx(6, 1, 1_000, nonce - 1)] if nonce < 3 else [], time_step_ms=PERIOD_MS)
        b.add_block([transfer_tx(4, 5, 10_000, nonce - 1)])
        nonce += 1
    return b


def unit_add(nonce: int, unit: str, capacity: int, node: str = "north") -> bytes:
    return council_tx("unit_add", nonce, node, unit=unit, capacity=capacity, attributes=bytes(32))


def tampered(source: SourceBlock, **changes: Any) -> SourceBlock:
    return replace(source, **changes)


# the RPC, as a node answers it (consensus/node.py get_block, consensus/rpc_methods.py) ----------------
class FakeRpc:
    """`call(method, **params)` answering from a ChainBuilder's store like a node's RPC would."""

    def __init__(self, builder: ChainBuilder) -> None:
        self.builder = builder
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.tamper: dict[str, Any] = {}

    def call(self, method: str, **params: Any) -> Any:
        self.calls.append((method, params))
        answer = getattr(self, "rpc_" + method)(**{k: v for k, v in params.items() if v is not None})
        hook = self.tamper.get(method)
        return hook(answer) if hook else answer

    def rpc_status(self) -> dict[str, Any]:
        b = self.builder
        return {"chain_id": b.genesis.chain_id, "genesis_hash": b.genesis.hash.hex(), "height": b.ledger.head.height,
                "state_root": b.ledger.state_root.hex()}

    def rpc_block(self, height: int) -> dict[str, Any] | None:
        store = self.builder.block_store
        data, cert = store.block_bytes(height), store.certificate(height)
        if data is None or cert is None:
            return None
        return block_to_json(Block.from_bytes(data), cert)

    def rpc_validators(self, height: int) -> dict[str, Any] | None:
        infos = self.builder.block_store.validators_at(height)
        return None if infos is None else {"height": height, "validators": [v.to_json() for v in infos if v.power > 0]}

    def rpc_proof(self, address: str, height: int | None = None) -> dict[str, Any]:
        from consensus.rpc_methods import to_json_ready
        from ledger.records import account_key

        ledger = self.builder.ledger
        key_ = account_key(bytes.fromhex(address))
        value, proof = ledger.prove(key_)
        return {
            "height": ledger.head.height,
            "state_root": ledger.state_root.hex(),
            "address": address,
            "key": key_.hex(),
            "value": None if value is None else value.hex(),
            "proof": to_json_ready(proof.to_wire()),
        }

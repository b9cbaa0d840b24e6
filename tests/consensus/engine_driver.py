"""Drives one engine by hand: the test plays the other validators and the network."""

from __future__ import annotations

from consensus.engine import (
    Action,
    BlockReceived,
    Broadcast,
    BroadcastBlock,
    Commit,
    Engine,
    EngineConfig,
    Event,
    EvidenceFound,
    ProposalReceived,
    ScheduleTimeout,
    TimeoutConfig,
    VoteReceived,
)
from consensus.proposer import proposer
from consensus.signer import MemorySignerGuard, Signer
from consensus.testing import HashChainApp, keypairs, sign_proposal, sign_vote, validator_set_of
from consensus.types import Proposal, Vote, VoteKind
from ledger.crypto import Keypair

CHAIN = "hearth-test"
TIMEOUTS = TimeoutConfig(
    propose_ms=300,
    propose_delta_ms=100,
    prevote_ms=200,
    prevote_delta_ms=50,
    precommit_ms=200,
    precommit_delta_ms=50,
)
KEYS = keypairs(4)
VSET = validator_set_of(KEYS)
PREVOTE, PRECOMMIT = VoteKind.PREVOTE, VoteKind.PRECOMMIT


def key_of(address: bytes) -> Keypair:
    return next(k for k in KEYS if k.public_key == address)


def proposer_key(height: int, round: int) -> Keypair:
    return key_of(proposer(VSET, height, round))


def non_proposer_index(height: int, *rounds: int) -> int:
    """Index in KEYS of a validator that proposes none of `rounds` at `height`."""
    busy = {proposer(VSET, height, r) for r in rounds}
    return next(i for i, k in enumerate(KEYS) if k.public_key not in busy)


class Driver:
    """One engine under test (validator KEYS[me], or an observer when me is None)."""

    def __init__(self, me: int | None, guard: MemorySignerGuard | None = None,
                 app: HashChainApp | None = None) -> None:
        self.guard = guard if guard is not None else MemorySignerGuard()
        self.me = None if me is None else KEYS[me]
        self.app = app if app is not None else HashChainApp(VSET)
        signer = None if self.me is None else Signer(self.me, self.guard)
        self.engine = Engine(EngineConfig(CHAIN, TIMEOUTS), self.app, signer)
        self.now_ms = 0
        self.log: list[Action] = []

    def feed(self, *events: Event) -> list[Action]:
        out: list[Action] = []
        for event in events:
            self.now_ms += 1
            out.extend(self.engine.handle(event, self.now_ms))
        self.log.extend(out)
        return out

    def propose(self, height: int, round: int, note: bytes = b"", pol_round: int = -1,
                block: tuple[bytes, bytes] | None = None) -> tuple[list[Action], bytes]:
        """The rightful proposer of (height, round) proposes; returns actions and block hash."""
        author = proposer_key(height, round)
        data, block_hash = block or self.app.make_block(height, round, author.public_key, note)
        proposal = sign_proposal(author, CHAIN, height, round, block_hash, pol_round)
        return self.feed(BlockReceived(height, data), ProposalReceived(proposal)), block_hash

    def votes_from(self, kind: VoteKind, height: int, round: int, block_hash: bytes | None,
                   *indices: int) -> list[Action]:
        return self.feed(*(VoteReceived(sign_vote(KEYS[i], CHAIN, kind, height, round, block_hash))
                           for i in indices))

    def others(self, count: int) -> list[int]:
        """Indices of `count` validators other than the one under test."""
        return [i for i, k in enumerate(KEYS) if k is not self.me][:count]


def votes(actions: list[Action], kind: VoteKind | None = None) -> list[Vote]:
    return [a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, Vote)
            and (kind is None or a.message.kind is kind)]


def proposals(actions: list[Action]) -> list[Proposal]:
    return [a.message for a in actions if isinstance(a, Broadcast) and isinstance(a.message, Proposal)]


def blocks(actions: list[Action]) -> list[BroadcastBlock]:
    return [a for a in actions if isinstance(a, BroadcastBlock)]


def timeouts(actions: list[Action]) -> list[ScheduleTimeout]:
    return [a for a in actions if isinstance(a, ScheduleTimeout)]


def commits(actions: list[Action]) -> list[Commit]:
    return [a for a in actions if isinstance(a, Commit)]


def evidence(actions: list[Action]) -> list[EvidenceFound]:
    return [a for a in actions if isinstance(a, EvidenceFound)]

"""A whole Hearth cluster in one process, deterministic from a seed.

Time is simulated: an event queue ordered by (time, sequence) and a clock that jumps to the next
event, so a minute of cluster time takes milliseconds and no test sleeps. All randomness comes from
one `random.Random(seed)`: the cluster's shape, the network's delays, drops, duplicates and
reordering, a partition that heals, a validator that crashes and restarts, and one Byzantine
validator that equivocates on proposals, prevotes and precommits. The same seed replays the same
run, event for event.

The harness plays the node runtime around each engine: it performs the engine's actions, stores
commits, and gossips. Gossip follows CometBFT's reactors in miniature: a node floods each new
message to peers that neither have it nor are receiving it, and on a periodic tick offers peers
the messages of its height they lack (how it knows what a peer lacks stands for CometBFT's peer
round state), and sends a peer that is behind the block and certificate of the peer's height
(block sync).

What the harness observes, for the invariants the tests check:
- every commit of every node with its certificate (safety, certificate validity, liveness);
- every message an honest validator signed (no two for one (height, round, step));
- every piece of evidence an honest node found (it verifies and names the Byzantine only).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Union

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
    Start,
    TimeoutConfig,
    TimeoutFired,
    VoteReceived,
    event_height,
)
from consensus.evidence import DuplicateVoteEvidence
from consensus.signer import MemorySignerGuard, Signer
from consensus.testing import HashChainApp, keypairs, sign_proposal, sign_vote, validator_set_of
from consensus.types import CommitCertificate, Proposal, ValidatorSet
from ledger.crypto import Keypair, sha256

CHAIN_ID = "hearth-sim"
TIMEOUTS = TimeoutConfig(
    propose_ms=300,
    propose_delta_ms=100,
    prevote_ms=150,
    prevote_delta_ms=50,
    precommit_ms=150,
    precommit_delta_ms=50,
)
GOSSIP_INTERVAL_MS = 100
COMMIT_DELAY_MS = 20
"""Time between a commit and the start of the next height (CometBFT's timeout_commit)."""
LIVENESS_BOUND_MS = 20_000
"""After the last fault heals, every honest node reaches the target height within this time."""

Message = Union[ProposalReceived, VoteReceived, BlockReceived]


@dataclass(frozen=True)
class Scenario:
    """Everything a seed decides about a run, drawn before it starts."""

    seed: int
    powers: tuple[int, ...]
    byzantine: int | None
    crash: tuple[int, int, int] | None  # (node, at_ms, down_ms)
    partition: tuple[frozenset[int], int, int] | None  # (one side, from_ms, until_ms)
    drop: float
    duplicate: float
    max_delay_ms: int
    target_height: int

    @classmethod
    def from_seed(cls, seed: int, target_height: int = 4) -> Scenario:
        rng = random.Random(seed)
        n = rng.randint(4, 7)
        powers = tuple([1] * n if rng.random() < 0.5 else [rng.randint(1, 10) for _ in range(n)])
        total = sum(powers)
        can_be_byzantine = [i for i, p in enumerate(powers) if 3 * p < total]
        byzantine = None
        if can_be_byzantine and rng.random() < 0.75:
            byzantine = rng.choice(can_be_byzantine)
        honest = [i for i in range(n) if i != byzantine]
        crash = None
        if rng.random() < 0.5:
            crash = (rng.choice(honest), rng.randint(0, 3000), rng.randint(100, 3000))
        partition = None
        if rng.random() < 0.5:
            side = frozenset(rng.sample(range(n), rng.randint(1, n - 1)))
            start = rng.randint(0, 3000)
            partition = (side, start, start + rng.randint(200, 4000))
        return cls(
            seed=seed,
            powers=powers,
            byzantine=byzantine,
            crash=crash,
            partition=partition,
            drop=rng.choice([0.0, 0.02, 0.1]),
            duplicate=rng.choice([0.0, 0.05]),
            max_delay_ms=rng.choice([10, 50, 100]),
            target_height=target_height,
        )

    @property
    def faults_healed_ms(self) -> int:
        """When the last partition heals and the last crashed node is back."""
        healed = 0
        if self.crash is not None:
            healed = max(healed, self.crash[1] + self.crash[2])
        if self.partition is not None:
            healed = max(healed, self.partition[2])
        return healed


@dataclass
class SimNode:
    index: int
    key: Keypair
    byzantine: bool
    app: HashChainApp  # durable: its committed chain is the node's block store
    guard: MemorySignerGuard = field(default_factory=MemorySignerGuard)  # durable
    certificates: dict[int, tuple[bytes, CommitCertificate]] = field(default_factory=dict)  # durable
    wal: dict[int, list[Message]] = field(default_factory=dict)  # durable: what it signed, by height
    engine: Engine | None = None
    incarnation: int = 0
    seen: set[Message] = field(default_factory=set)
    inbound: Counter[Message] = field(default_factory=Counter)
    known: dict[int, list[Message]] = field(default_factory=dict)  # height -> messages to offer

    @property
    def up(self) -> bool:
        return self.engine is not None

    @property
    def committed_height(self) -> int:
        return len(self.app.chain)

    def boot(self) -> None:
        """Start (or restart) from durable state: the same guard, the same block store."""
        self.incarnation += 1
        self.engine = Engine(EngineConfig(CHAIN_ID, TIMEOUTS), self.app, Signer(self.key, self.guard))
        self.seen, self.inbound, self.known = set(), Counter(), {}

    def crash(self) -> None:
        self.engine = None
        self.incarnation += 1


def _as_message(action: Broadcast | BroadcastBlock) -> Message:
    if isinstance(action, BroadcastBlock):
        return BlockReceived(action.height, action.block)
    if isinstance(action.message, Proposal):
        return ProposalReceived(action.message)
    return VoteReceived(action.message)


@dataclass
class Observations:
    commits: dict[int, dict[int, bytes]] = field(default_factory=dict)  # height -> node -> hash
    commit_times: dict[int, dict[int, int]] = field(default_factory=dict)  # node -> height -> ms
    bad_certificates: list[str] = field(default_factory=list)
    signed: dict[tuple[bytes, int, int, str], set[Message]] = field(default_factory=dict)
    evidence: list[tuple[int, DuplicateVoteEvidence]] = field(default_factory=list)
    deliveries: int = 0


class Simulation:
    def __init__(self, scenario: Scenario, durable_signer_state: bool = True) -> None:
        """`durable_signer_state=False` makes a crash lose the signer guard and the WAL, as a node
        without them would: tests use it to show the double-signing check is not vacuous."""
        self.scenario = scenario
        self.durable_signer_state = durable_signer_state
        self.rng = random.Random(scenario.seed ^ 0x5EED)
        keys = keypairs(len(scenario.powers), tag=scenario.seed.to_bytes(8, "big"))
        self.validators: ValidatorSet = validator_set_of(keys, list(scenario.powers))
        self.nodes = [
            SimNode(i, key, i == scenario.byzantine, HashChainApp(self.validators, key.public_key))
            for i, key in enumerate(keys)
        ]
        self.now_ms = 0
        self._queue: list[tuple[int, int, tuple[object, ...]]] = []
        self._sequence = 0
        self.seen_by = Observations()
        honest = [n.index for n in self.nodes if not n.byzantine]
        self.byzantine_audience = frozenset(honest[: len(honest) // 2])  # the rest see the other story
        self._second_story: dict[tuple[int, int], bytes] = {}  # (height, round) -> other block hash

    # --- Event queue and clock

    def _at(self, time_ms: int, *event: object) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (time_ms, self._sequence, event))

    def run(self, time_limit_ms: int | None = None) -> Observations:
        s = self.scenario
        limit = time_limit_ms if time_limit_ms is not None else s.faults_healed_ms + LIVENESS_BOUND_MS
        for node in self.nodes:
            self._at(self.rng.randint(0, 20), "boot", node.index)
        if s.crash is not None:
            node, at_ms, down_ms = s.crash
            self._at(at_ms, "crash", node)
            self._at(at_ms + down_ms, "boot", node)
        while self._queue and not (self.reached_target() and self.equivocation_caught()):
            time_ms, _, event = heapq.heappop(self._queue)
            if time_ms > limit:
                break
            self.now_ms = time_ms
            self._handle(event)
        return self.seen_by

    def equivocation_caught(self) -> bool:
        """No one to catch, or some honest node has reported the Byzantine validator."""
        if self.scenario.byzantine is None:
            return True
        culprit = self.nodes[self.scenario.byzantine].key.public_key
        return any(e.validator == culprit for _, e in self.seen_by.evidence)

    def reached_target(self) -> bool:
        target = self.scenario.target_height
        return all(n.committed_height >= target for n in self.nodes if not n.byzantine)

    def _handle(self, event: tuple[object, ...]) -> None:
        kind, index = event[0], event[1]
        assert isinstance(index, int)
        node = self.nodes[index]
        if kind == "boot":
            if node.incarnation > 0 and not self.durable_signer_state:
                node.guard, node.wal = MemorySignerGuard(), {}
            node.boot()
            height = node.committed_height + 1
            self._feed(node, Start(height))
            for message in node.wal.get(height, []):  # WAL replay: its own messages, as received
                node.seen.add(message)
                self._remember(node, message)
                self._feed(node, message)
            first_tick = self.now_ms + self.rng.randint(1, GOSSIP_INTERVAL_MS)
            self._at(first_tick, "gossip", index, node.incarnation)
        elif kind == "crash":
            node.crash()
        elif event[2] != node.incarnation or not node.up:
            return  # a timer or delivery for an incarnation that crashed
        elif kind == "start":
            self._feed(node, Start(node.committed_height + 1))
        elif kind == "timeout":
            timeout = event[3]
            assert isinstance(timeout, TimeoutFired)
            self._feed(node, timeout)
        elif kind == "deliver":
            message = event[3]
            assert isinstance(message, (ProposalReceived, VoteReceived, BlockReceived))
            self._receive(node, message)
        elif kind == "gossip":
            self._gossip(node)
            next_tick = self.now_ms + GOSSIP_INTERVAL_MS + self.rng.randint(-20, 20)
            self._at(next_tick, "gossip", index, node.incarnation)

    # --- The node runtime around one engine

    def _feed(self, node: SimNode, event: Event) -> None:
        assert node.engine is not None
        for action in node.engine.handle(event, self.now_ms):
            self._perform(node, action)

    def _perform(self, node: SimNode, action: Action) -> None:
        if isinstance(action, (Broadcast, BroadcastBlock)):
            message = _as_message(action)
            if node.byzantine:
                self._equivocate(node, message)
            else:
                self._record_signed(node, message)
                node.wal.setdefault(event_height(message), []).append(message)  # before it is sent
                self._remember(node, message)
                node.seen.add(message)
                for peer in self.nodes:
                    if peer is not node:
                        self._send(node, peer, message)
        elif isinstance(action, ScheduleTimeout):
            timeout = TimeoutFired(action.height, action.round, action.step)
            self._at(self.now_ms + action.duration_ms, "timeout", node.index, node.incarnation, timeout)
        elif isinstance(action, Commit):
            self._store_commit(node, action)
        elif isinstance(action, EvidenceFound):
            if not node.byzantine:
                self.seen_by.evidence.append((node.index, action.evidence))

    def _store_commit(self, node: SimNode, commit: Commit) -> None:
        try:
            commit.certificate.verify(self.validators, CHAIN_ID)
            certified = (commit.certificate.height, commit.certificate.block_hash)
            if certified != (commit.height, commit.block_hash):
                raise ValueError("certificate names another height or block")
        except ValueError as exc:
            self.seen_by.bad_certificates.append(f"node {node.index} height {commit.height}: {exc}")
        node.app.commit(commit.height, commit.block_hash)
        node.certificates[commit.height] = (commit.block, commit.certificate)
        node.wal = {h: messages for h, messages in node.wal.items() if h > commit.height}
        if not node.byzantine:
            self.seen_by.commits.setdefault(commit.height, {})[node.index] = commit.block_hash
            self.seen_by.commit_times.setdefault(node.index, {})[commit.height] = self.now_ms
        self._at(self.now_ms + COMMIT_DELAY_MS, "start", node.index, node.incarnation)

    def _record_signed(self, node: SimNode, message: Message) -> None:
        """Every message an honest validator signed, by what it signed for: at most one each."""
        if isinstance(message, ProposalReceived):
            p = message.proposal
            key = (node.key.public_key, p.height, p.round, "proposal")
        elif isinstance(message, VoteReceived):
            v = message.vote
            key = (v.validator, v.height, v.round, v.kind.name)
        else:
            return
        self.seen_by.signed.setdefault(key, set()).add(message)

    def _remember(self, node: SimNode, message: Message) -> None:
        node.known.setdefault(event_height(message), []).append(message)

    def _receive(self, node: SimNode, message: Message) -> None:
        self.seen_by.deliveries += 1
        node.inbound[message] -= 1
        if node.inbound[message] <= 0:
            del node.inbound[message]
        assert node.engine is not None
        height = event_height(message)
        if height > node.engine.height + 1:
            pass  # the engine drops it; it is not "seen", so gossip offers it again later
        elif message not in node.seen:
            node.seen.add(message)
            if not node.byzantine and height >= node.engine.height:
                self._remember(node, message)
                for peer in self.nodes:  # flood to peers that neither have it nor are receiving it
                    if peer is not node:
                        self._send(node, peer, message)
        self._feed(node, message)  # duplicates too: the engine must ignore them

    def _gossip(self, node: SimNode) -> None:
        """The periodic tick: offer each peer what it lacks at its height, or sync it if behind."""
        assert node.engine is not None
        if node.byzantine:
            return  # it only ever sends its own (two-faced) messages
        for height in [h for h in node.known if h < node.engine.height]:
            del node.known[height]
        for peer in self.nodes:
            if peer is node or not peer.up:
                continue
            if peer.committed_height < node.committed_height:
                block, certificate = node.certificates[peer.committed_height + 1]
                sync: list[Message] = [BlockReceived(certificate.height, block)]
                sync += [VoteReceived(v) for v in certificate.precommits()]
                for message in sync:
                    self._send(node, peer, message)
                continue
            assert peer.engine is not None
            for message in node.known.get(peer.engine.height, ()):
                self._send(node, peer, message)

    def _send(self, sender: SimNode, receiver: SimNode, message: Message) -> None:
        """The network: may drop (and always drops across the partition), delays at random (so
        reorders), may duplicate. Skips a receiver that has the message or is receiving it."""
        if message in receiver.seen or message in receiver.inbound:
            return
        s = self.scenario
        if s.partition is not None:
            side, start, end = s.partition
            if start <= self.now_ms < end and (sender.index in side) != (receiver.index in side):
                return
        if self.rng.random() < s.drop:
            return
        copies = 2 if self.rng.random() < s.duplicate else 1
        for _ in range(copies):
            delay = self.rng.randint(1, s.max_delay_ms)
            receiver.inbound[message] += 1
            self._at(self.now_ms + delay, "deliver", receiver.index, receiver.incarnation, message)

    # --- The Byzantine validator

    def _equivocate(self, node: SimNode, message: Message) -> None:
        """Tell half the honest nodes what the engine signed, and the other half a conflicting
        story: another block and proposal, and votes for it (or nil, or a phantom hash)."""
        honest = [p for p in self.nodes if not p.byzantine]
        first = [p for p in honest if p.index in self.byzantine_audience]
        second = [p for p in honest if p.index not in self.byzantine_audience]
        other = self._conflicting(node, message)
        for peer in first:
            self._send(node, peer, message)
        for peer in second:
            for m in other:
                self._send(node, peer, m)

    def _conflicting(self, node: SimNode, message: Message) -> list[Message]:
        if isinstance(message, BlockReceived):
            return []  # the other block goes with the other proposal
        if isinstance(message, ProposalReceived):
            p = message.proposal
            block, block_hash = node.app.make_block(
                p.height, p.round, node.key.public_key, note=b"second story"
            )
            other = sign_proposal(node.key, CHAIN_ID, p.height, p.round, block_hash)
            self._second_story[(p.height, p.round)] = block_hash
            return [BlockReceived(p.height, block), ProposalReceived(other)]
        assert isinstance(message, VoteReceived)
        vote = message.vote
        # A vote for its own block becomes one for its second block (or nil); a nil vote becomes
        # one for the second block, or for a phantom hash nobody has.
        other_block = self._second_story.get((vote.height, vote.round))
        if vote.block_hash is None and other_block is None:
            other_block = sha256(b"phantom" + vote.round.to_bytes(4, "big"))
        other = sign_vote(node.key, CHAIN_ID, vote.kind, vote.height, vote.round, other_block)
        return [VoteReceived(other)]


def run_seed(seed: int, target_height: int = 4) -> tuple[Simulation, Observations]:
    simulation = Simulation(Scenario.from_seed(seed, target_height))
    return simulation, simulation.run()

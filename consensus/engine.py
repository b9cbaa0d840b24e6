"""One validator's Tendermint state machine: events in, actions out, nothing else.

This is Algorithm 1 of Buchman, Kwon and Milosevic, "The latest gossip on BFT consensus" (2018),
with the paper's line numbers in the rule names. The engine does no I/O and reads no clock: the
caller passes the local time with each event, performs the returned actions (send, arm a timer,
store a commit) and feeds back what happens. Given the same events and times, it returns the same
actions, which is what lets tests/simulation run a whole cluster from a seed.

Differences from the paper, all stated in specs/consensus.md:
- A proposal names its block by hash; the block bytes arrive separately (`BlockReceived`).
- The decision rule (line 49) needs the block with the decided hash but not the proposal message,
  so a node can decide from a commit certificate relayed by block sync. More than 2/3 precommits
  for a hash already decide it; the proposal adds nothing to safety.
- Every node arms the propose timeout at the start of a round, the proposer too, so a proposer
  whose signer refuses (after a restart) still leaves the propose step.
- After deciding, the engine waits for `Start(height + 1)`: the node applies the block first, so
  the application can build the next block on it.
- Signing goes through `Signer`, which refuses anything that could conflict with what this
  validator signed before, and persists the lock; a restarted engine resumes from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from consensus.app import Application
from consensus.constants import (
    MAX_BLOCKS_PER_HEIGHT,
    MAX_BUFFERED_NEXT_HEIGHT,
    MAX_CONFLICTING_VOTES_PER_HEIGHT,
    MAX_ROUNDS_AHEAD,
)
from consensus.errors import ConsensusInvariantViolation, check_invariant
from consensus.evidence import DuplicateVoteEvidence
from consensus.proposer import proposer
from consensus.signer import NO_LOCK, Lock, Signer
from consensus.types import (
    CommitCertificate,
    Proposal,
    Step,
    ValidatorSet,
    Vote,
    VoteKind,
    proposal_sign_bytes,
    validate_chain_id,
    vote_sign_bytes,
)

__all__ = [
    "TimeoutConfig",
    "EngineConfig",
    "Start",
    "ProposalReceived",
    "VoteReceived",
    "BlockReceived",
    "TimeoutFired",
    "Event",
    "event_height",
    "signing_proposer",
    "vote_signed_by_a_validator",
    "Broadcast",
    "BroadcastBlock",
    "ScheduleTimeout",
    "Commit",
    "EvidenceFound",
    "Action",
    "Engine",
]


# --- Configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeoutConfig:
    """Timeout of a step in round r: base + r * delta, so that after the network stabilises some
    round is long enough for correct validators to hear each other (the paper's liveness argument)."""

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"timeouts: {name} must be a non-negative integer")
        if min(self.propose_ms, self.prevote_ms, self.precommit_ms) < 1:
            raise ValueError("timeouts: base timeouts must be at least 1 ms")

    def duration_ms(self, step: Step, round: int) -> int:
        if step is Step.PROPOSE:
            return self.propose_ms + round * self.propose_delta_ms
        if step is Step.PREVOTE:
            return self.prevote_ms + round * self.prevote_delta_ms
        return self.precommit_ms + round * self.precommit_delta_ms


@dataclass(frozen=True)
class EngineConfig:
    chain_id: str
    timeouts: TimeoutConfig = TimeoutConfig()

    def __post_init__(self) -> None:
        validate_chain_id(self.chain_id)


# --- Events (inputs) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Begin `height`: the block of `height - 1` is committed and applied (or this is genesis)."""

    height: int


@dataclass(frozen=True)
class ProposalReceived:
    proposal: Proposal


@dataclass(frozen=True)
class VoteReceived:
    vote: Vote


@dataclass(frozen=True)
class BlockReceived:
    """Block bytes for `height`, from a proposer's broadcast or from block sync."""

    height: int
    block: bytes


@dataclass(frozen=True)
class TimeoutFired:
    """A timeout the engine scheduled has expired."""

    height: int
    round: int
    step: Step


Event = Union[Start, ProposalReceived, VoteReceived, BlockReceived, TimeoutFired]


# --- Actions (outputs) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Broadcast:
    """Send a message this validator signed to every peer."""

    message: Proposal | Vote


@dataclass(frozen=True)
class BroadcastBlock:
    """Send the bytes of a block this validator proposes to every peer."""

    height: int
    block_hash: bytes
    block: bytes


@dataclass(frozen=True)
class ScheduleTimeout:
    """Feed `TimeoutFired(height, round, step)` back after `duration_ms` of local time."""

    height: int
    round: int
    step: Step
    duration_ms: int


@dataclass(frozen=True)
class Commit:
    """`block` is decided at `height`. Store it with its certificate, apply it, then send
    `Start(height + 1)`."""

    height: int
    round: int
    block_hash: bytes
    block: bytes
    certificate: CommitCertificate


@dataclass(frozen=True)
class EvidenceFound:
    """A validator signed two conflicting votes; hand the evidence to the evidence pool."""

    evidence: DuplicateVoteEvidence


Action = Union[Broadcast, BroadcastBlock, ScheduleTimeout, Commit, EvidenceFound]


# --- Round state -----------------------------------------------------------------------------


class _VoteTally:
    """Votes of one kind in one round, counted as the paper counts messages: each validator once
    towards "any value" (the power that has voted), and once towards each value it voted for.

    A correct validator votes once, so only an equivocator counts towards two values. That is
    safe: two values each backed by more than 2/3 of the power share more than 1/3, so a correct
    validator would have voted for both. It is needed for liveness: a correct validator that
    first heard an equivocator's other vote must still see the polka its peers saw.
    """

    __slots__ = ("votes", "power_for", "power")

    def __init__(self) -> None:
        self.votes: dict[bytes, dict[bytes | None, Vote]] = {}  # validator -> value -> vote
        self.power_for: dict[bytes | None, int] = {}
        self.power = 0

    def add(self, vote: Vote, power: int) -> bool:
        """Count `vote`; False if this validator's vote for this value was counted already (a
        restarted validator re-signs the vote it had sent, and may have heard it back)."""
        by_value = self.votes.get(vote.validator)
        if by_value is None:
            by_value = self.votes[vote.validator] = {}
            self.power += power
        elif vote.block_hash in by_value:
            return False
        by_value[vote.block_hash] = vote
        self.power_for[vote.block_hash] = self.power_for.get(vote.block_hash, 0) + power
        return True

    def votes_for(self, block_hash: bytes | None) -> list[Vote]:
        return [by_value[block_hash] for by_value in self.votes.values() if block_hash in by_value]


class _HeightState:
    """Everything the engine knows about one height; replaced whole when the next height starts,
    which is the paper's "empty message log" at line 53."""

    def __init__(self, height: int, validators: ValidatorSet) -> None:
        self.height = height
        self.validators = validators
        self.quorum = validators.quorum_power
        self.proposals: dict[int, Proposal] = {}
        self.blocks: dict[bytes, bytes] = {}
        self.validity: dict[bytes, bool] = {}
        self.tallies: dict[tuple[int, VoteKind], _VoteTally] = {}
        self.senders: dict[int, set[bytes]] = {}
        self.sender_power: dict[int, int] = {}
        self.skip_rounds: set[int] = set()
        self.commit_candidates: set[tuple[int, bytes]] = set()
        self.prevote_timeout_armed: set[int] = set()
        self.precommit_timeout_armed: set[int] = set()
        self.polka_seen: set[int] = set()
        self.equivocations_reported: set[tuple[bytes, int, VoteKind]] = set()
        self.conflicting_votes = 0
        self.max_round = MAX_ROUNDS_AHEAD  # messages of later rounds are dropped

    def note_sender(self, round: int, validator: bytes) -> None:
        """Record a message of `round` from `validator`, for the round-skip rule (line 55)."""
        senders = self.senders.setdefault(round, set())
        if validator in senders:
            return
        senders.add(validator)
        power = self.sender_power.get(round, 0) + self.validators.power_of(validator)
        self.sender_power[round] = power
        if power >= self.validators.round_skip_power:
            self.skip_rounds.add(round)

    def count_vote(self, vote: Vote) -> None:
        tally = self.tally(vote.round, vote.kind)
        if not tally.add(vote, self.validators.power_of(vote.validator)):
            return
        if (
            vote.kind is VoteKind.PRECOMMIT
            and vote.block_hash is not None
            and tally.power_for[vote.block_hash] >= self.quorum
        ):
            self.commit_candidates.add((vote.round, vote.block_hash))
        self.note_sender(vote.round, vote.validator)

    def tally(self, round: int, kind: VoteKind) -> _VoteTally:
        key = (round, kind)
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = _VoteTally()
        return tally

    def power_for(self, round: int, kind: VoteKind, block_hash: bytes | None) -> int:
        tally = self.tallies.get((round, kind))
        return 0 if tally is None else tally.power_for.get(block_hash, 0)

    def power_in(self, round: int, kind: VoteKind) -> int:
        tally = self.tallies.get((round, kind))
        return 0 if tally is None else tally.power

    def is_named(self, block_hash: bytes) -> bool:
        """Whether a proposal or vote of this height names `block_hash` (so its bytes matter)."""
        return any(p.block_hash == block_hash for p in self.proposals.values()) or any(
            block_hash in t.power_for for t in self.tallies.values()
        )


def event_height(event: Event) -> int:
    """The height an event belongs to, e.g. for a node routing messages to sync or consensus."""
    if isinstance(event, ProposalReceived):
        return event.proposal.height
    if isinstance(event, VoteReceived):
        return event.vote.height
    return event.height


def signing_proposer(proposal: Proposal, validators: ValidatorSet, max_round: int, chain_id: str) -> bytes | None:
    """The address of the proposer of the proposal's round in `validators` if the round is at most
    `max_round` and that proposer signed it, else None: what the engine asks of a proposal before it
    takes it, and the node before it relays one (RELAY-3). The round is checked first: a far
    round's proposer takes a replay of the schedule."""
    if proposal.round > max_round:
        return None
    author = proposer(validators, proposal.height, proposal.round)
    return author if proposal.is_signed_by(author, chain_id) else None


def vote_signed_by_a_validator(vote: Vote, validators: ValidatorSet, chain_id: str) -> bool:
    """Whether a vote's validator is in `validators` and the signature is that validator's over it:
    what the engine asks of a vote before it counts, and the node before it relays one (RELAY-3)."""
    return vote.validator in validators and vote.is_signature_valid(chain_id)


# --- The engine ------------------------------------------------------------------------------


class Engine:
    """The state machine of one validator, or of an observer when `signer` is None (or signs for
    an address outside the validator set): an observer follows and decides but never signs."""

    def __init__(self, config: EngineConfig, app: Application, signer: Signer | None = None) -> None:
        self._config = config
        self._app = app
        self._signer = signer
        self._hs: _HeightState | None = None
        self._previous: _HeightState | None = None  # the height before, kept to catch equivocation
        self._lock: Lock = NO_LOCK
        self._valid_round = -1
        self._valid_hash: bytes | None = None
        self._next_height: list[Event] = []
        self._actions: list[Action] = []
        self._now_ms = 0
        self.height = 0
        self.round = 0
        self.step = Step.PROPOSE
        self.decided = False

    def _state(self) -> _HeightState:
        hs = self._hs
        if hs is None:
            raise ConsensusInvariantViolation("the engine acts on a height only after Start")
        return hs

    # Read-only views, for the node's status API and for tests.

    @property
    def lock(self) -> Lock:
        return self._lock

    @property
    def valid_round(self) -> int:
        return self._valid_round

    @property
    def validator_set(self) -> ValidatorSet | None:
        return None if self._hs is None else self._hs.validators

    @property
    def max_round(self) -> int | None:
        """The last round of this height whose messages the engine takes; None before a height."""
        return None if self._hs is None else self._hs.max_round

    def handle(self, event: Event, now_ms: int) -> list[Action]:
        """Process one event at local time `now_ms`; return the actions to perform, in order."""
        self._now_ms = now_ms
        self._actions = []
        self._dispatch(event)
        self._run_rules()
        actions, self._actions = self._actions, []
        return actions

    # --- Inputs

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Start):
            self._on_start(event.height)
            return
        if isinstance(event, TimeoutFired):
            self._on_timeout(event)
            return
        height = event_height(event)
        if height == self.height + 1:
            if len(self._next_height) < MAX_BUFFERED_NEXT_HEIGHT:
                self._next_height.append(event)
            return
        hs = self._hs if height == self.height else None
        if hs is not None and not self.decided:
            if isinstance(event, ProposalReceived):
                self._on_proposal(event.proposal)
            elif isinstance(event, VoteReceived):
                self._on_vote(hs, event.vote)
            else:
                self._on_block(event.block)
            return
        # A decided height, just decided or the one before: votes still reveal equivocation, and
        # no rule reads these tallies any more.
        if hs is None and self._previous is not None and height == self._previous.height:
            hs = self._previous
        if hs is not None and isinstance(event, VoteReceived):
            self._on_vote(hs, event.vote)

    def _on_start(self, height: int) -> None:
        if height < 1 or (self._hs is not None and height <= self.height):
            return
        self._previous = self._hs if self._hs is not None and self._hs.height == height - 1 else None
        self._hs = _HeightState(height, self._app.validator_set(height))
        self.height = height
        self.decided = False
        start_round, self._lock = (0, NO_LOCK) if self._signer is None else (
            self._signer.restored_lock(height)
        )
        self._valid_round, self._valid_hash = -1, None
        buffered = [e for e in self._next_height if event_height(e) == height]
        self._next_height = []
        self._start_round(start_round)
        for event in buffered:
            self._dispatch(event)

    def _on_proposal(self, proposal: Proposal) -> None:
        hs = self._state()
        if proposal.round in hs.proposals:
            return  # a duplicate, or a second proposal (the first one stands)
        author = signing_proposer(proposal, hs.validators, hs.max_round, self._config.chain_id)
        if author is None:
            return  # too far ahead, or not its round's proposer's
        hs.proposals[proposal.round] = proposal
        hs.note_sender(proposal.round, author)

    def _on_vote(self, hs: _HeightState, vote: Vote) -> None:
        if vote.round > hs.max_round or vote.validator not in hs.validators:
            return
        earlier = hs.tally(vote.round, vote.kind).votes.get(vote.validator)
        if earlier is not None and vote.block_hash in earlier:
            return  # duplicate (signatures are deterministic; another one is a forgery or noise)
        if not vote_signed_by_a_validator(vote, hs.validators, self._config.chain_id):
            return
        if earlier is not None:
            self._report_equivocation(hs, next(iter(earlier.values())), vote)
            if hs.conflicting_votes >= MAX_CONFLICTING_VOTES_PER_HEIGHT:
                return
            hs.conflicting_votes += 1
        hs.count_vote(vote)

    def _on_block(self, block: bytes) -> None:
        hs = self._state()
        block_hash = self._app.block_hash(block)
        if block_hash is None or block_hash in hs.blocks:
            return
        if len(hs.blocks) >= MAX_BLOCKS_PER_HEIGHT and not hs.is_named(block_hash):
            return
        hs.blocks[block_hash] = block

    def _on_timeout(self, timeout: TimeoutFired) -> None:
        if self._hs is None or self.decided:
            return
        if (timeout.height, timeout.round) != (self.height, self.round):
            return
        if timeout.step is Step.PROPOSE and self.step is Step.PROPOSE:  # line 57
            self._cast_vote(VoteKind.PREVOTE, None)
            self.step = Step.PREVOTE
        elif timeout.step is Step.PREVOTE and self.step is Step.PREVOTE:  # line 61
            self._cast_vote(VoteKind.PRECOMMIT, None)
            self.step = Step.PRECOMMIT
        elif timeout.step is Step.PRECOMMIT:  # line 65
            self._start_round(self.round + 1)

    # --- Bookkeeping

    def _report_equivocation(self, hs: _HeightState, earlier: Vote, later: Vote) -> None:
        key = (later.validator, later.round, later.kind)
        if key in hs.equivocations_reported:
            return
        hs.equivocations_reported.add(key)
        self._actions.append(EvidenceFound(DuplicateVoteEvidence.from_votes(earlier, later)))

    def _is_valid(self, block_hash: bytes) -> bool:
        """valid(v) of the paper, asked of the application once per block."""
        hs = self._state()
        known = hs.validity.get(block_hash)
        if known is None:
            known = self._app.validate_block(hs.height, hs.blocks[block_hash])
            hs.validity[block_hash] = known
        return known

    def _active_signer(self) -> Signer | None:
        """Our signer if we are a validator of this height; None for an observer."""
        signer = self._signer
        if signer is None or signer.address not in self._state().validators:
            return None
        return signer

    # --- Outputs

    def _schedule(self, step: Step) -> None:
        duration = self._config.timeouts.duration_ms(step, self.round)
        self._actions.append(ScheduleTimeout(self.height, self.round, step, duration))

    def _cast_vote(self, kind: VoteKind, block_hash: bytes | None) -> None:
        signer = self._active_signer()
        if signer is None:
            return
        sign_bytes = vote_sign_bytes(
            self._config.chain_id, kind, self.height, self.round, block_hash, signer.address
        )
        signature = signer.sign(self.height, self.round, kind.step, sign_bytes, self._lock)
        if signature is None:
            return  # the guard refused: this step was signed before a restart
        vote = Vote(kind, self.height, self.round, block_hash, signer.address, signature)
        self._actions.append(Broadcast(vote))
        self._state().count_vote(vote)

    def _start_round(self, round: int) -> None:
        """StartRound, line 11."""
        hs = self._state()
        self.round = round
        self.step = Step.PROPOSE
        hs.max_round = round + MAX_ROUNDS_AHEAD
        signer = self._active_signer()
        if signer is not None and proposer(hs.validators, hs.height, round) == signer.address:
            self._propose(signer)
        self._schedule(Step.PROPOSE)

    def _propose(self, signer: Signer) -> None:
        """Lines 14-19: propose the valid block if there is one, else a new block."""
        hs = self._state()
        if self._valid_hash is not None:
            block_hash, pol_round = self._valid_hash, self._valid_round
            block = hs.blocks[block_hash]
        else:
            block, block_hash = self._app.propose_block(hs.height, self.round, self._now_ms)
            pol_round = -1
        sign_bytes = proposal_sign_bytes(
            self._config.chain_id, hs.height, self.round, block_hash, pol_round
        )
        signature = signer.sign(hs.height, self.round, Step.PROPOSE, sign_bytes, self._lock)
        if signature is None:
            return
        proposal = Proposal(hs.height, self.round, block_hash, pol_round, signature)
        self._actions.append(BroadcastBlock(hs.height, block_hash, block))
        self._actions.append(Broadcast(proposal))
        hs.blocks[block_hash] = block
        hs.proposals[self.round] = proposal
        hs.note_sender(self.round, signer.address)

    # --- The upon rules

    def _run_rules(self) -> None:
        """Fire upon rules until none applies. Each firing changes the step or the round, or sets
        a once-only flag, so this ends."""
        while self._hs is not None and not self.decided and (
            self._upon_decision()
            or self._upon_round_skip()
            or self._upon_proposal_in_propose_step()
            or self._upon_prevote_quorum_any()
            or self._upon_polka_for_proposal()
            or self._upon_polka_for_nil()
            or self._upon_precommit_quorum_any()
        ):
            pass

    def _upon_decision(self) -> bool:
        """Line 49: more than 2/3 precommits in any round for a block we hold and find valid."""
        hs = self._state()
        for round, block_hash in sorted(hs.commit_candidates):
            if block_hash in hs.blocks and self._is_valid(block_hash):
                self._decide(round, block_hash)
                return True
        return False

    def _decide(self, round: int, block_hash: bytes) -> None:
        hs = self._state()
        precommits = hs.tally(round, VoteKind.PRECOMMIT).votes_for(block_hash)
        certificate = CommitCertificate.from_precommits(precommits)
        signed_power = sum(hs.validators.power_of(v.validator) for v in precommits)
        check_invariant(signed_power >= hs.quorum, "a commit certificate holds a quorum")
        self.decided = True
        self._actions.append(Commit(hs.height, round, block_hash, hs.blocks[block_hash], certificate))

    def _upon_round_skip(self) -> bool:
        """Line 55: messages of a later round from more than 1/3 of the power: go to that round."""
        hs = self._state()
        later = [r for r in hs.skip_rounds if r > self.round]
        if not later:
            return False
        self._start_round(max(later))
        return True

    def _upon_proposal_in_propose_step(self) -> bool:
        """Lines 22 and 28: prevote for the round's proposal, or nil if it is invalid or conflicts
        with our lock. A re-proposal (pol_round >= 0) waits for its 2/3 prevotes at pol_round."""
        hs = self._state()
        if self.step is not Step.PROPOSE:
            return False
        proposal = hs.proposals.get(self.round)
        if proposal is None or proposal.block_hash not in hs.blocks:
            return False
        block_hash, pol_round = proposal.block_hash, proposal.pol_round
        if pol_round == -1:  # line 22
            free = self._lock.round == -1 or self._lock.block_hash == block_hash
        else:  # line 28
            if hs.power_for(pol_round, VoteKind.PREVOTE, block_hash) < hs.quorum:
                return False
            free = self._lock.round <= pol_round or self._lock.block_hash == block_hash
        acceptable = free and self._is_valid(block_hash)
        self._cast_vote(VoteKind.PREVOTE, block_hash if acceptable else None)
        self.step = Step.PREVOTE
        return True

    def _upon_prevote_quorum_any(self) -> bool:
        """Line 34: more than 2/3 prevotes for anything in this round: arm the prevote timeout."""
        hs = self._state()
        if (
            self.step is not Step.PREVOTE
            or self.round in hs.prevote_timeout_armed
            or hs.power_in(self.round, VoteKind.PREVOTE) < hs.quorum
        ):
            return False
        hs.prevote_timeout_armed.add(self.round)
        self._schedule(Step.PREVOTE)
        return True

    def _upon_polka_for_proposal(self) -> bool:
        """Line 36: the round's proposal has more than 2/3 prevotes ("a polka") and is valid: lock
        on it and precommit it if still in the prevote step; remember it as the valid block."""
        hs = self._state()
        if self.step is Step.PROPOSE or self.round in hs.polka_seen:
            return False
        proposal = hs.proposals.get(self.round)
        if proposal is None or proposal.block_hash not in hs.blocks:
            return False
        block_hash = proposal.block_hash
        if hs.power_for(self.round, VoteKind.PREVOTE, block_hash) < hs.quorum:
            return False
        if not self._is_valid(block_hash):
            return False
        hs.polka_seen.add(self.round)
        if self.step is Step.PREVOTE:
            self._lock = Lock(self.round, block_hash)
            self._cast_vote(VoteKind.PRECOMMIT, block_hash)
            self.step = Step.PRECOMMIT
        self._valid_round, self._valid_hash = self.round, block_hash
        return True

    def _upon_polka_for_nil(self) -> bool:
        """Line 44: more than 2/3 prevotes for nil: precommit nil."""
        hs = self._state()
        if self.step is not Step.PREVOTE:
            return False
        if hs.power_for(self.round, VoteKind.PREVOTE, None) < hs.quorum:
            return False
        self._cast_vote(VoteKind.PRECOMMIT, None)
        self.step = Step.PRECOMMIT
        return True

    def _upon_precommit_quorum_any(self) -> bool:
        """Line 47: more than 2/3 precommits for anything in this round: arm the precommit timeout."""
        hs = self._state()
        if (
            self.round in hs.precommit_timeout_armed
            or hs.power_in(self.round, VoteKind.PRECOMMIT) < hs.quorum
        ):
            return False
        hs.precommit_timeout_armed.add(self.round)
        self._schedule(Step.PRECOMMIT)
        return True

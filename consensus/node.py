"""The node runtime: the consensus engine, the ledger application, the peer layer, block sync and the RPC.

One asyncio event loop owns everything (the RPC reads the ledger on it too, see node_services.py).
The engine is pure; this module turns its actions into effects and the world into its events:

    engine action        effect here
    Broadcast(msg)       WAL append, send to every peer (and remember, to resend while stuck)
    BroadcastBlock       the same, for the block bytes
    ScheduleTimeout      a loop timer that feeds TimeoutFired back
    Commit               LedgerApp.commit (state + block + certificate: one batch, one fsync),
                         mempool update, WAL truncation, Start(height + 1) block_interval_ms after
                         the decision (or empty_block_interval_ms while the mempool is empty)
    EvidenceFound        the evidence pool, and gossip

Peer frames (see p2p.py for the framing, block_sync.py for the sync ones): status, proposal,
vote, block, txs, evidence, get_blocks, blocks. Consensus messages are relayed once on first
sight, so a node reaches validators it has no direct link to, but only to the peers that the peer
it came from is not linked to: status frames name each node's links (RELAY-1), so in a full mesh
nothing is relayed. While a height makes no progress the node resends its own messages of the
current round every gossip interval, and those it passed on (RELAY-2), which is what lets
validators that lost messages (a partition, a restart, a link that came up late) meet again in one
round.

Transactions from peers and clients arrive in batches; decoding and signature checks run in
worker processes (consensus/verifier.py) so the event loop keeps serving consensus, or, with
`mempool.signature_workers` 0, on the loop a chunk a turn; then admission (nonce, balance) runs on
the loop. Each signature is verified once per node: the hash then sits in the
shared SignatureCache that block execution consults. A node sends its clients' transactions whole
to every peer and only announces the hashes of its peers' (`tx_hashes`), to the peers their source is
not linked to; a peer that has not received an announced one whole within TX_FETCH_DELAY_S asks for
it (`get_txs`). So in a full mesh each node receives each transaction once and no announcement, and
in a sparser one they still reach everyone.

Fatal: an invariant violation (ledger or consensus) stops the node with a non-zero exit; nothing a
peer or a client sends is fatal.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from consensus.block_json import block_to_json, header_to_json
from consensus.app_ledger import BlockRefused, CommittedBlock, EvidencePool, LedgerApp
from consensus.block_store import BlockStore
from consensus.block_sync import MAX_BLOCKS_PER_REQUEST, BlockSync, serve_blocks
from consensus.clock import Clock, SystemClock
from consensus.constants import MAX_ROUNDS_AHEAD
from consensus.config import NodeHome, parse_host_port
from consensus.engine import (
    Action,
    Broadcast,
    BroadcastBlock,
    BlockReceived,
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
    signing_proposer,
    vote_signed_by_a_validator,
)
from consensus.errors import ConsensusInvariantViolation, MessageInvalid
from consensus.evidence import DuplicateVoteEvidence
from consensus.mempool import Added, Mempool, MempoolFull
from consensus.verifier import InlineChecks, Verifier
from consensus.node_services import BlockFeed, TxIndexDisabled, TxResult
from consensus.p2p import P2P, Peer
from consensus.rpc_server import RpcConfig, RpcServer
from consensus.signer import Signer
from consensus.signer_guard import ConsensusWAL, FileSignerGuard
from consensus.types import CommitCertificate, Proposal, Vote, VoteKind, vote_sign_bytes
from ledger import Genesis, InvariantViolation, LedgerDB, LevelDBStore, Rejected, SignatureCache, Tx, decode_tx, detached
from ledger.crypto import sha256
from ledger.encoding import encode_fast

__all__ = ["Node", "FRAME_KINDS"]

log = logging.getLogger("hearth.node")

FRAME_KINDS = ("status", "proposal", "vote", "block", "txs", "tx_hashes", "get_txs", "evidence", "get_blocks", "blocks")
TX_GOSSIP_INTERVAL_S = 0.04
"""How often a node sends peers what it admitted since: larger frames, fewer of them (each costs
both ends a socket write or read and a parse, whatever its size)."""
TX_ANNOUNCE_INTERVAL_S = 0.25
"""How often a node announces its peers' transactions to its other peers (`tx_hashes`). In a full
mesh every announcement is of a transaction the peer already has, so they go less often than the
transactions themselves: a few frames a second per peer instead of one each TX_GOSSIP_INTERVAL_S;
beyond one hop a transaction spreads at most this much later (then TX_FETCH_DELAY_S)."""
TX_GOSSIP_MAX_BYTES = 1 << 20
TX_HASHES_PER_FRAME = 8_192
"""Hashes in one `tx_hashes` announcement or `get_txs` request, at most."""
TX_FETCH_DELAY_S = 0.5
"""How long an announced transaction may take to arrive whole from its origin before this node asks
the announcer for it (in a full mesh it arrives first, and nothing is asked)."""
MAX_WANTED_TXS = 50_000
"""Announced transactions this node waits for, at most; past it the oldest are forgotten."""
TX_CHECKS_IN_FLIGHT = 2
"""Batches of peers' transactions at the gossip verifier at once (one checked, one queued)."""
TX_CHECK_BATCH_MAX = 500
"""Peer transactions sent to the verifier in one call, at most (queued batches are merged)."""
TX_CHECK_GATHER = 128
TX_CHECK_GATHER_S = 0.01
"""A batch of fewer than TX_CHECK_GATHER peer transactions, with nothing queued behind it, waits this
long for more before going to the verifier: a call costs the node and its worker about as much as
a few signatures, whatever its size, and each peer sends a frame per TX_GOSSIP_INTERVAL_S."""
RECHECK_CHUNK = 500
"""Mempool transactions re-checked per turn of the event loop after a commit (~50 ms of work)."""
TX_BATCH_QUEUE_MAX = 256
"""Batches of peer transactions waiting for signature checks; past it a batch is dropped (counted)."""
MAX_SEEN = 100_000
MAX_TX_WAITERS = 100_000
RECENT_COMMITS_MAX = 50_000
"""On a node without transaction indexes: where the latest this many committed transactions are,
so that a wait that starts just after the commit (a pending transaction submitted again) finds it."""
MAX_HELD_BLOCKS = 16
MAX_PASSED_ON = 4_096
"""Others' consensus messages kept for the heights above the head (RELAY-2); past it the oldest go."""
MAX_PASSED_ON_BYTES = 64 << 20
"""And their bytes (a block's as its size, a vote's or proposal's as 512): a peer sending blocks
for the next heights cannot make this node hold more."""
BLOCK_PRECHECK_MIN_TXS = 16
"""A proposed block carrying at least this many transactions whose signatures this node has not
checked yet has them checked by the priority verifier before the engine sees it, so the event loop
keeps answering votes and RPC meanwhile (and the engine's execution finds them in the cache)."""
MAX_PRECHECKING_BLOCKS = 8
"""Blocks held back by the drift rule at once; past it a far-future block goes to the engine
(whose validity check does not read the clock) and is prevoted on like any other."""


GC_THRESHOLDS = (250_000, 4, 20)
"""The node process's cyclic garbage collector: a young collection per 250,000 net allocations of
tracked objects instead of 700, and a middle one per 4 young ones (about as many objects between
two of them as 20 young collections of 50,000). Almost all of a node's garbage is acyclic and freed
by reference counting; what the collector costs is walking the objects that are still alive. With
CPython's defaults a loaded validator walked its whole heap (caches of decoded transactions and
state) six times in a one-minute run, about 130 ms each time: pauses that showed in the
submit-to-commit p99. At 50,000, a validator at 4,900 transfers/s ran 25 young collections a
minute of about 19 ms each (mostly walking mempool entries and their records, which a commit frees
a second later), 1.8 µs of CPU per transfer; at 250,000 one in the minute, 50 ms, 0.2 µs per
transfer (profile_network --cpu-phases, its `gc:` phases)."""


def tune_garbage_collection() -> None:
    """For a node's own process, once its genesis and stores are loaded: what is there now is
    kept for the process's life, so the collector stops walking it (`gc.freeze`), and collections
    run at GC_THRESHOLDS."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Node:
    """A Hearth node: a validator when its key is in the validator set of a height, else a full node."""

    def __init__(self, home: Path | str, *, clock: Clock | None = None, byzantine_equivocate: bool = False) -> None:
        self.home = NodeHome(Path(home))
        self.config = self.home.load_config()
        self.keypair = self.home.load_key()
        self._genesis = Genesis.from_file(str(self.home.genesis_path))
        self.clock = clock or SystemClock()
        self.byzantine_equivocate = byzantine_equivocate
        self.address = self.keypair.public_key

        self.home.ledger_dir.mkdir(parents=True, exist_ok=True)
        self.store = LevelDBStore(str(self.home.ledger_dir))
        self._ledger = LedgerDB(self.store, self._genesis)
        self.verified = SignatureCache()
        self.mempool = Mempool(self._ledger, self.verified, self.config.mempool.max_txs, self.config.mempool.max_bytes)
        self.blocks = BlockStore(self.store)
        self.blocks.configure_tx_index(self.config.tx_index.enabled, self._ledger.head.height)
        self.evidence = EvidencePool()
        self.app = LedgerApp(
            self._ledger, self.blocks, self.mempool, self.evidence, self.verified, self.clock, self.address, self.config.consensus,
            check_recorded_effects=self.config.devnet.check_recorded_effects,
        )
        c = self.config.consensus
        timeouts = TimeoutConfig(
            propose_ms=c.timeout_propose_ms,
            propose_delta_ms=c.timeout_delta_ms,
            prevote_ms=c.timeout_prevote_ms,
            prevote_delta_ms=c.timeout_delta_ms,
            precommit_ms=c.timeout_precommit_ms,
            precommit_delta_ms=c.timeout_delta_ms,
        )
        self.signer = Signer(self.keypair, FileSignerGuard(self.home.signer_path, self.home.legacy_signer_path))
        self.engine = Engine(EngineConfig(self._genesis.chain_id, timeouts), self.app, self.signer)
        self.wal = ConsensusWAL(self.home.wal_dir)
        self.p2p = P2P(
            self.keypair,
            self._genesis.chain_id,
            self.config.p2p,
            self._on_frame,
            FRAME_KINDS,
            moniker=self.config.moniker,
            on_connect=self._on_peer_connect,
            on_disconnect=self._on_peer_disconnect,
            admin=self.config.devnet.admin,
        )
        rpc_host, rpc_port = parse_host_port(self.config.rpc.listen)
        self.rpc = RpcServer(
            self,
            RpcConfig(host=rpc_host, port=rpc_port, rate_per_s=self.config.rpc.rate_per_s, rate_burst=self.config.rpc.rate_burst),
        )
        self.sync = BlockSync(lag_grace_s=2 * c.gossip_interval_ms / 1000)
        self.feed = BlockFeed()
        self.stats: dict[str, int] = {
            "invalid_messages": 0, "tx_batches_dropped": 0, "sync_refused": 0, "txs_received": 0, "txs_asked": 0, "relayed": 0,
        }

        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._held: set[bytes] = set()  # hashes of blocks held back by the drift rule
        self._own: list[tuple[int, int, str, Any]] = []  # (height, round, kind, payload) signed here
        self._passed_on: deque[_PassedOn] = deque()
        """Others' consensus messages seen for heights above the head, oldest first, for new peers
        and while stuck (RELAY-2)."""
        self._passed_on_bytes = 0
        self._timers: dict[int, asyncio.TimerHandle] = {}
        """Scheduled and not fired yet, by number (`_schedule`)."""
        self._timer_count = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: dict[bytes, list[asyncio.Future[TxResult]]] = {}
        self._recent_commits: OrderedDict[bytes, tuple[int, int]] = OrderedDict()
        """Without transaction indexes: hash -> (height, index) of the latest commits (RECENT_COMMITS_MAX)."""
        self._tx_batches: asyncio.Queue[tuple[bytes | None, list[bytes], list[bytes]]] | None = None
        self._wanted: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()
        """Announced transactions not here yet: hash -> (announcing peer's node id, when announced)."""
        self._fetch_scheduled = False
        self._to_announce: list[Added] = []
        """Peers' transactions admitted here and not announced yet (`_gossip_txs`)."""
        self._announce_at = 0.0
        self._tx_checks: asyncio.Queue[tuple[list[Any], list[bytes], dict[bytes, Tx | Rejected], asyncio.Future[list[Tx | Rejected]]]] | None = None
        """Peer batches on their way through the verifier: (batches, raws sent, results known, the check)."""
        self._submitted_done: asyncio.Future[None] | None = None
        self._arriving: set[bytes] = set()
        """Hashes of peer transactions received whole and queued for their signature check (at
        most the mempool's max_txs of them, and max_bytes in all: `_arriving_bytes`)."""
        self._arriving_bytes = 0
        workers, inline = self.config.mempool.signature_workers, InlineChecks(self.verified)  # inline: with no workers
        self._verifier = Verifier(workers, inline)
        """Checks peers' gossip, the bulk."""
        self._priority_verifier = Verifier(workers, inline, priority=True)
        """Checks what someone waits on: a proposed block's unseen transactions, clients' submissions."""
        self._inline_checks = inline
        self._prechecking: set[bytes] = set()  # hashes of blocks whose signatures the verifier checks now
        self._submitted: list[tuple[list[bytes], asyncio.Future[list[bytes | Exception]]]] = []  # RPC submissions awaiting one batched check
        self._applying_sync = False
        self._last_progress: tuple[int, int, int] = (0, 0, 0)
        self._fatal: BaseException | None = None
        self._stopped: asyncio.Event | None = None  # made on the loop, in start()
        self._mempool_ready: asyncio.Event | None = None  # set unless a mempool re-check runs
        self._recheck_task: asyncio.Task[None] | None = None
        self._waiting_for_txs: tuple[int, float] | None = None  # (next height, earliest start)
        self._timeline: dict[str, float] = {}
        """Monotonic times of this height's steps (start, block, prevote, precommit, decided), for the commit log."""

    # NodeServices: properties ---------------------------------------------------------------------
    @property
    def ledger(self) -> LedgerDB:
        return self._ledger

    @property
    def genesis(self) -> Genesis:
        return self._genesis

    @property
    def chain_id(self) -> str:
        return self._genesis.chain_id

    # lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._verifier.start()
        self._priority_verifier.start()
        self._stopped = asyncio.Event()
        self._mempool_ready = asyncio.Event()
        self._mempool_ready.set()
        self._tx_batches = asyncio.Queue(TX_BATCH_QUEUE_MAX)
        self._tx_checks = asyncio.Queue(TX_CHECKS_IN_FLIGHT - 1)
        replayed = self.wal.replay()
        await self.p2p.start()
        await self.rpc.start()
        head = self._ledger.head.height
        log.info(
            "node %s (%s) at height %d, p2p %s:%s, rpc %s, %s",
            self.config.moniker,
            self.address.hex()[:16],
            head,
            parse_host_port(self.config.p2p.listen)[0],
            self.p2p.listen_port,
            self.rpc.url,
            "validator" if self.is_validator() else "full node",
        )
        self._feed(Start(head + 1))
        for height, kind, payload in replayed:
            if height > head:
                try:
                    self._handle_message(None, kind, payload, from_wal=True)
                except (MessageInvalid, ValueError, TypeError, KeyError) as exc:
                    log.warning("WAL: skipped an unusable %s record: %s", kind, exc)
        if replayed:
            log.info("replayed %d consensus messages from the WAL", len(replayed))
        self._spawn(self._gossip_loop())
        self._spawn(self._tx_gossip_loop())
        self._spawn(self._tx_check_loop())
        self._spawn(self._tx_admission_loop())

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.rpc.close()
        await self.p2p.stop()
        self._verifier.stop()
        self._priority_verifier.stop()
        self.wal.close()
        self.store.close()
        log.info("node %s stopped at height %d", self.config.moniker, self._ledger.head.height)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set or a fatal error; re-raise the fatal error after stopping."""
        await self.start()
        assert self._stopped is not None
        stop_task = asyncio.ensure_future(stop.wait())
        fatal_task = asyncio.ensure_future(self._stopped.wait())
        await asyncio.wait({stop_task, fatal_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        fatal_task.cancel()
        await self.stop()
        if self._fatal is not None:
            raise self._fatal

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._die(task.exception())  # type: ignore[arg-type]

    def _die(self, exc: BaseException) -> None:
        log.critical("stopping: %s: %s", type(exc).__name__, exc, exc_info=exc)
        if self._fatal is None:
            self._fatal = exc
        if self._stopped is not None:
            self._stopped.set()

    # the engine --------------------------------------------------------------------------------------
    def _feed(self, event: Event) -> None:
        if self._fatal is not None:
            return
        if isinstance(event, Start):
            self._timeline = {"start": time.monotonic()}
        try:
            actions = self.engine.handle(event, self.clock.now_ms())
            for action in actions:
                self._perform(action)
        except (ConsensusInvariantViolation, InvariantViolation) as exc:
            self._die(exc)

    def _perform(self, action: Action) -> None:
        if isinstance(action, Broadcast):
            message = action.message
            kind = "proposal" if isinstance(message, Proposal) else "vote"
            if kind == "vote":
                self._timeline.setdefault("prevote" if message.kind is VoteKind.PREVOTE else "precommit", time.monotonic())
            self._send_own(message.height, message.round, kind, message.to_wire())
            if self.byzantine_equivocate and isinstance(message, Vote) and message.kind is VoteKind.PREVOTE:
                self._equivocate(message)
        elif isinstance(action, BroadcastBlock):
            self._timeline.setdefault("proposed", time.monotonic())
            payload = {"height": action.height, "hash": action.block_hash, "block": action.block}
            self._send_own(action.height, self.engine.round, "block", payload)
        elif isinstance(action, ScheduleTimeout):
            self._schedule(action.duration_ms / 1000, TimeoutFired(action.height, action.round, action.step))
        elif isinstance(action, Commit):
            if action.height != self._ledger.head.height + 1:
                return  # block sync committed it first
            decided = self._timeline["decided"] = time.monotonic()
            try:
                committed = self.app.commit(action.block_hash, action.block, action.certificate)
            except BlockRefused as exc:  # the engine decided a block valid(v) accepted: cannot fail
                raise ConsensusInvariantViolation(f"decided block {action.height} cannot be committed: {exc}") from exc
            self._after_commit(committed)
            self._schedule_next_height(action.height + 1, since_decided_s=time.monotonic() - decided)
        elif isinstance(action, EvidenceFound):
            try:
                self._add_evidence(action.evidence, source=None)
            except MessageInvalid as exc:
                log.error("evidence from the engine does not verify: %s", exc)

    def _schedule_next_height(self, height: int, since_decided_s: float = 0.0) -> None:
        """Start `height` block_interval_ms after the previous one was decided (the commit's own
        time counts towards it), or, with an empty mempool, after empty_block_interval_ms unless a
        transaction arrives first (see _tx_gossip_loop)."""
        c = self.config.consensus
        delay_ms = c.block_interval_ms
        self._waiting_for_txs = None
        if len(self.mempool) == 0 and c.empty_block_interval_ms > delay_ms:
            delay_ms = c.empty_block_interval_ms
            self._waiting_for_txs = (height, time.monotonic() + c.block_interval_ms / 1000)
        self._schedule(max(0.0, delay_ms / 1000 - since_decided_s), Start(height))

    def _schedule(self, delay_s: float, event: "Event | _HeldBlock") -> None:
        """Feed `event` (or release a held block) after `delay_s`. The handle is kept by a number,
        not closed over: a closure that names its own handle and the handle that holds the closure
        make a cycle, and every fired timer (several a height) waited for the collector, with its
        event, reaching its older generations on a loaded node."""
        self._timer_count += 1
        key = self._timer_count
        self._timers[key] = asyncio.get_running_loop().call_later(delay_s, self._fire, key, event)

    def _fire(self, key: int, event: "Event | _HeldBlock") -> None:
        del self._timers[key]
        if isinstance(event, _HeldBlock):
            self._release_held(event)
        else:
            self._feed(event)

    def _release_held(self, held: "_HeldBlock") -> None:
        """A block held back for the drift rule: its time is now within the drift; feed it."""
        self._held.discard(held.payload["hash"])
        if held.height > self._ledger.head.height and held.height <= self._ledger.head.height + 2:
            self.wal.append(held.height, "block", held.payload)
            self._feed(BlockReceived(held.height, held.payload["block"]))

    def _send_own(self, height: int, round: int, kind: str, payload: Any) -> None:
        self.wal.append(height, kind, payload)
        self._own.append((height, round, kind, payload))
        self._mark_seen(_message_id(kind, payload))
        self.p2p.broadcast(kind, payload)

    def _equivocate(self, vote: Vote) -> None:
        """Devnet only: also sign a conflicting prevote, bypassing the guard, to test slashing."""
        other = None if vote.block_hash is not None else sha256(b"equivocation" + vote.height.to_bytes(8, "big"))
        sign_bytes = vote_sign_bytes(self.chain_id, VoteKind.PREVOTE, vote.height, vote.round, other, self.address)
        twin = Vote(VoteKind.PREVOTE, vote.height, vote.round, other, self.address, self.keypair.sign(sign_bytes))
        log.warning("byzantine: equivocating at height %d round %d", vote.height, vote.round)
        self.p2p.broadcast("vote", twin.to_wire())

    def _after_commit(self, committed: CommittedBlock) -> None:
        header = committed.block.header
        height = header.height
        self.mempool.update((tx.hash for tx in committed.txs), recheck_now=RECHECK_CHUNK)
        self.verified.forget_decoded(committed.txs)
        if self.mempool.rechecking and self._recheck_task is None:
            assert self._mempool_ready is not None
            self._mempool_ready.clear()
            self._recheck_task = self._spawn(self._recheck_loop())
        self.wal.committed(height)
        self._own = [m for m in self._own if m[0] > height]
        self._passed_on = deque(m for m in self._passed_on if m.height > height)
        self._passed_on_bytes = sum(m.size for m in self._passed_on)
        self.sync.on_progress(time.monotonic())
        if self.blocks.tx_index_from is None:
            recent = self._recent_commits
            for index, tx in enumerate(committed.txs):
                recent[tx.hash] = (height, index)
            while len(recent) > RECENT_COMMITS_MAX:
                recent.popitem(last=False)
        if self._waiters:
            for index, tx in enumerate(committed.txs):
                waiting = self._waiters.pop(tx.hash, None)
                if waiting:
                    result = TxResult(tx.hash, height, index, header.time_ms, tx.raw)
                    for future in waiting:
                        if not future.done():
                            future.set_result(result)
        if self.feed:  # a summary only for subscribers: the hex of a block's every hash is not free
            self.feed.publish({"header": header_to_json(committed.block), "tx_hashes": [tx.hash.hex() for tx in committed.txs]})
        log.info(
            "committed height=%d hash=%s txs=%d time_ms=%d round=%d state_root=%s steps_ms=%s",
            height,
            header.hash.hex()[:16],
            len(committed.txs),
            header.time_ms,
            committed.certificate.round,
            header.state_root.hex()[:16],
            self._steps_ms(),
        )
        self.p2p.broadcast("status", self._status())

    def _steps_ms(self) -> str:
        """This height's timeline as milliseconds since its start, e.g. block=12,prevote=40,...,done=95."""
        marks = self._timeline
        start = marks.get("start")
        if start is None:  # committed on a block another height's start did not see (sync, restart)
            return "-"
        marks["done"] = time.monotonic()
        return ",".join(f"{name}={round((t - start) * 1000)}" for name, t in marks.items() if name != "start")

    async def _recheck_loop(self) -> None:
        """Re-check the mempool on the new head a chunk at a time, yielding between chunks."""
        assert self._mempool_ready is not None
        try:
            while self.mempool.rechecking:
                await asyncio.sleep(0)
                self.mempool.recheck_some(RECHECK_CHUNK)
        finally:
            self._recheck_task = None
            self._mempool_ready.set()

    def is_validator(self) -> bool:
        return self.address in self.app.validator_set(self._ledger.head.height + 1)

    # peers -----------------------------------------------------------------------------------------
    def _status(self) -> dict[str, Any]:
        """A status frame: this node's head (SYNC-1) and the node ids of the peers it is linked to,
        so each peer relays it only what those links do not bring (RELAY-1). More peers than a
        status may list: none listed, so every peer relays us everything (the safe way)."""
        peers = self.p2p.peers
        return {"height": self._ledger.head.height, "peers": sorted(peers) if len(peers) <= MAX_LINKS_LISTED else []}

    def _on_peer_connect(self, peer: Peer) -> None:
        self.p2p.broadcast("status", self._status())  # the new peer, and the others: our links changed
        # A new peer may have missed this height's messages: give it ours, and those we passed on
        # (a relay made before this link was up did not reach it, RELAY-2).
        head = self._ledger.head.height
        for height, _, kind, payload in self._own:
            if height > head:
                self.p2p.send(peer, kind, payload)
        proposed = {p["block_hash"] for _, _, kind, p, *_ in [*self._own, *self._passed_on] if kind == "proposal"}
        for m in self._passed_on:
            if m.height > head and (m.kind != "block" or m.payload["hash"] in proposed):
                self.p2p.send(peer, m.kind, m.payload)

    def _on_peer_disconnect(self, peer: Peer) -> None:
        self.sync.on_disconnect(peer.node_id)
        self.p2p.broadcast("status", self._status())  # so no peer counts on this link to bring our relays

    def _on_frame(self, peer: Peer, kind: str, payload: Any) -> None:
        try:
            self._handle_message(peer, kind, payload, from_wal=False)
        except (MessageInvalid, ValueError, TypeError, KeyError) as exc:
            self.stats["invalid_messages"] += 1
            log.debug("invalid %s from %s: %s", kind, peer.name, exc)

    def _handle_message(self, peer: Peer | None, kind: str, payload: Any, from_wal: bool) -> None:
        if kind == "status":
            height = _int_field(payload, "height")
            try:
                links = _links_field(payload)
            except MessageInvalid:
                if peer is not None:
                    peer.data["links"] = _NO_LINKS  # relayed everything until it says better
                raise
            if peer is not None:
                self.sync.on_status(peer.node_id, height)
                peer.data["links"] = links
            return
        if kind == "txs":
            self._receive_txs(peer, payload)
            return
        if kind == "tx_hashes":
            if peer is not None:
                self._receive_tx_hashes(peer, payload)
            return
        if kind == "get_txs":
            if peer is not None:
                self._serve_txs(peer, payload)
            return
        if kind == "get_blocks":
            if peer is not None:
                self._serve_blocks(peer, _int_field(payload, "from"), _int_field(payload, "count"))
            return
        if kind == "blocks":
            if peer is not None:
                self._receive_blocks(peer, payload)
            return
        if kind == "evidence":
            self._add_evidence(DuplicateVoteEvidence.from_wire(payload), source=peer)
            return
        self._receive_consensus(peer, kind, payload, from_wal)

    def _receive_consensus(self, peer: Peer | None, kind: str, payload: Any, from_wal: bool) -> None:
        event: Event
        if kind == "proposal":
            proposal = Proposal.from_wire(payload)
            height, event = proposal.height, ProposalReceived(proposal)
        elif kind == "vote":
            vote = Vote.from_wire(payload)
            height, event = vote.height, VoteReceived(vote)
        elif kind == "block":
            height = _int_field(payload, "height")
            claimed = payload.get("hash")
            block = payload.get("block")
            if not isinstance(block, bytes) or not isinstance(claimed, bytes):
                raise MessageInvalid("block frame: hash and block must be bytes")
            if b"b" + claimed in self._seen:
                return
            self._timeline.setdefault("block_frame", time.monotonic())
            decoded = self.app.decode(block)
            if decoded is None or decoded.hash != claimed or decoded.header.height != height:
                raise MessageInvalid("block frame: not a block, or not the block it names")
            if not from_wal and self._precheck(peer, payload, claimed, height, decoded.txs):
                return
            event = BlockReceived(height, block)
            self._timeline.setdefault("block", time.monotonic())
            ahead_ms = self.app.ahead_of_clock_ms(decoded)
            if ahead_ms > 0 and not from_wal and len(self._held) < MAX_HELD_BLOCKS:
                # Block time rule: too far ahead of our clock to prevote for now. Hold it back
                # from the engine (it stays valid: APP-1) until the clock catches up; relay it.
                self._mark_seen(b"b" + claimed)
                self._relay(kind, payload, peer, height, -1)
                log.info("holding block %d %s: %d ms beyond the allowed clock drift", height, claimed.hex()[:12], ahead_ms)
                self._held.add(claimed)
                self._schedule(ahead_ms / 1000, _HeldBlock(height, payload))
                return
        else:
            raise MessageInvalid(f"unexpected frame kind {kind}")
        head = self._ledger.head.height
        if height <= head or height > head + 2:
            return  # decided already, or too far ahead (block sync will bring it)
        message_id = _message_id(kind, payload)
        if message_id in self._seen and not from_wal:
            return
        if not from_wal and not self._signed_as_it_says(event):
            raise MessageInvalid(f"{kind} of height {height}: not signed by whom it names, or not by a validator of that height")
        self._mark_seen(message_id)
        if not from_wal:
            self.wal.append(height, kind, payload)
            self._relay(kind, payload, peer, height, _event_round(event))  # once, on first sight
        elif self._signed_here(event):
            self._own.append((height, _event_round(event), kind, payload))  # resend what we said before the crash
        self._feed(event)

    def _signed_as_it_says(self, event: Event) -> bool:
        """RELAY-3: a vote or a proposal of the height after the head must carry the signature of a
        validator of that height (a proposal: of its round's proposer, and of a round the engine
        takes), or it goes no further: not relayed, not written to the WAL, not fed. One of the
        height after that is taken on trust (its validator set is not known before the next height
        commits); the engine checks it when that height starts. The checks are the engine's own,
        remembered (`verify_signature_cached`), so the engine's are free after them; they are written
        once, in consensus/engine.py (`vote_signed_by_a_validator`, `signing_proposer`)."""
        if not isinstance(event, (VoteReceived, ProposalReceived)):
            return True
        height = event.vote.height if isinstance(event, VoteReceived) else event.proposal.height
        if height != self._ledger.head.height + 1:
            return True
        started = self.engine.height == height
        validators = self.engine.validator_set if started else None
        if validators is None:  # the engine has not started the height yet (an empty block's wait)
            validators = self.app.validator_set(height)
        if isinstance(event, VoteReceived):
            return vote_signed_by_a_validator(event.vote, validators, self.chain_id)
        max_round = self.engine.max_round if started else None
        return signing_proposer(event.proposal, validators, MAX_ROUNDS_AHEAD if max_round is None else max_round, self.chain_id) is not None

    def _relay(self, kind: str, payload: Any, source: Peer | None, height: int | None = None, round: int = -1) -> None:
        """Send on a message first seen from `source` (RELAY-1): to every peer but `source` and
        those linked to `source` by both ends' word (`_linked_both_ways`), which have it from
        `source`, or from where `source` had it. In a full mesh nothing is relayed; in a sparser
        one a message still reaches every node. A consensus message (`height` given) is kept until
        its height is committed, for peers that connect later and to send again while the height
        is stuck (RELAY-2), up to MAX_PASSED_ON messages and MAX_PASSED_ON_BYTES of them."""
        if source is None:
            self.stats["relayed"] += self.p2p.broadcast(kind, payload)
            return
        self.stats["relayed"] += self.p2p.broadcast(kind, payload, exclude=source, skip=self._linked_both_ways(source.node_id))
        if height is not None:
            size = len(payload["block"]) if kind == "block" else 512
            self._passed_on.append(_PassedOn(height, round, kind, payload, source.node_id, size))
            self._passed_on_bytes += size
            while len(self._passed_on) > MAX_PASSED_ON or self._passed_on_bytes > MAX_PASSED_ON_BYTES:
                self._passed_on_bytes -= self._passed_on.popleft().size

    def _linked_both_ways(self, node_id: bytes) -> frozenset[bytes]:
        """The peers that peer `node_id` says it is linked to and that say so of it too. One side's
        word alone is not taken: a peer that lied about its links would have this node withhold
        other nodes' messages from peers it never sends them to."""
        peers = self.p2p.peers
        source = peers.get(node_id)
        if source is None:
            return _NO_LINKS
        claimed = source.data.get("links", _NO_LINKS)
        return frozenset(n for n in claimed if n in peers and node_id in peers[n].data.get("links", _NO_LINKS))

    def _precheck(self, peer: Peer | None, payload: Any, claimed: bytes, height: int, txs: tuple[bytes, ...]) -> bool:
        """Whether the block frame goes to the priority verifier first (it comes back through
        `_receive_consensus` once its unseen signatures are in the cache); a copy of a block being
        checked is dropped."""
        if claimed in self._prechecking:
            return True
        head = self._ledger.head.height
        if not head < height <= head + 2 or len(self._prechecking) >= MAX_PRECHECKING_BLOCKS:
            return False
        unseen, hashes = self._unverified(txs)
        if len(unseen) < BLOCK_PRECHECK_MIN_TXS:
            return False
        self._prechecking.add(claimed)
        self._spawn(self._precheck_block(peer, payload, claimed, unseen, hashes))
        return True

    async def _precheck_block(self, peer: Peer | None, payload: Any, claimed: bytes, unseen: list[bytes], hashes: list[bytes]) -> None:
        started = time.monotonic()
        try:
            checked = await self._priority_verifier.check(unseen, self.chain_id, hashes)
        finally:
            self._prechecking.discard(claimed)
        log.debug("precheck: %d unseen in block %s, %d ms", len(unseen), claimed.hex()[:12], (time.monotonic() - started) * 1000)
        for item in checked:
            if not isinstance(item, Rejected):
                self.verified.remember(item)  # a refused one is found again by the engine's execution
        try:
            self._receive_consensus(peer, "block", payload, from_wal=False)
        except (MessageInvalid, ValueError, TypeError, KeyError) as exc:
            self.stats["invalid_messages"] += 1
            log.debug("invalid block from %s: %s", peer.name if peer else "?", exc)

    def _signed_here(self, event: Event) -> bool:
        if isinstance(event, VoteReceived):
            return event.vote.validator == self.address
        if isinstance(event, ProposalReceived):
            return event.proposal.is_signed_by(self.address, self.chain_id)
        if isinstance(event, BlockReceived):
            decoded = self.app.decode(event.block)
            return decoded is not None and decoded.header.proposer == self.address
        return False

    def _mark_seen(self, message_id: bytes) -> None:
        self._seen[message_id] = None
        while len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)

    # evidence ---------------------------------------------------------------------------------------
    def _add_evidence(self, evidence: DuplicateVoteEvidence, source: Peer | None) -> None:
        if self.blocks.has_evidence(evidence):
            return
        if evidence.height > self._ledger.head.height + 1:
            return
        try:
            evidence.verify(self.app.validator_set(evidence.height), self.chain_id)
        except (MessageInvalid, BlockRefused) as exc:
            raise MessageInvalid(f"evidence: {exc}") from None
        if self.evidence.add(evidence):
            log.warning(
                "evidence: validator %s signed conflicting %s votes at height %d round %d",
                evidence.validator.hex()[:16],
                evidence.vote_a.kind.name.lower(),
                evidence.height,
                evidence.vote_a.round,
            )
            self._relay("evidence", evidence.to_wire(), source)

    # transactions ----------------------------------------------------------------------------------
    async def submit_tx(self, raw: bytes) -> bytes:
        """Admit a client's transaction: its hash, or raises Rejected / MempoolFull."""
        (result,) = await self.submit_txs([raw])
        if isinstance(result, Exception):
            try:
                raise result
            finally:
                del result  # else this frame, which the traceback holds, holds the refusal: a cycle
        return result

    async def submit_txs(self, raws: list[bytes]) -> list[bytes | Exception]:
        """Admit a client's transactions, in order: for each its hash, or the Rejected /
        MempoolFull that refused it. The submissions of one loop turn (a JSON-RPC batch, or many
        single calls at once) have their signatures checked in one call to the verifier and are
        admitted together, after any mempool re-check, in the order they came: one client's
        consecutive nonces are admitted in order."""
        future: asyncio.Future[list[bytes | Exception]] = asyncio.get_running_loop().create_future()
        if not self._submitted:
            asyncio.get_running_loop().call_soon(lambda: self._spawn(self._admit_submitted()))
        self._submitted.append((raws, future))
        return await future

    async def _admit_submitted(self) -> None:
        assert self._mempool_ready is not None
        batch, self._submitted = self._submitted, []
        previous, done = self._submitted_done, asyncio.get_running_loop().create_future()
        self._submitted_done = done
        try:
            unchecked, hashes = self._unverified(raw for raws, _ in batch for raw in raws)
            if unchecked:
                for item in await self._priority_verifier.check(unchecked, self.chain_id, hashes):
                    if not isinstance(item, Rejected):
                        self.verified.remember(item)  # a refused one is refused again by `add`, with its reason
            if previous is not None:  # the verifier may finish batches out of order: admit in order
                await asyncio.shield(previous)
            if not self._mempool_ready.is_set():
                await self._mempool_ready.wait()  # a new transaction is checked after the re-checked ones
            for raws, future in batch:  # no await from here on: nothing comes in between
                if not future.done():  # else its caller gave up
                    future.set_result([self._admit_one(raw) for raw in raws])
        finally:
            for _, future in batch:
                if not future.done():
                    future.set_exception(RuntimeError("the submission could not be admitted"))
            done.set_result(None)

    def _unverified(self, raws: Iterable[bytes]) -> tuple[list[bytes], list[bytes]]:
        """Those of `raws` whose signatures this node has not checked yet, and their hashes."""
        verified = self.verified
        unseen, hashes = [], []
        for raw in raws:
            if isinstance(raw, bytes) and verified.decoded(raw) is None:
                tx_hash = sha256(raw)
                if tx_hash not in verified:
                    unseen.append(raw)
                    hashes.append(tx_hash)
        return unseen, hashes

    def _admit_one(self, raw: bytes) -> bytes | Exception:
        tx = self.verified.decoded(raw) if isinstance(raw, bytes) else None
        try:
            return (self.mempool.add(raw) if tx is None else self.mempool.add_decoded(tx))[1]
        except (Rejected, MempoolFull) as exc:  # node_services' MempoolFull is the mempool's: the RPC maps both
            return detached(exc)

    def _receive_txs(self, peer: Peer | None, payload: Any) -> None:
        if not isinstance(payload, list) or not set(map(type, payload)) <= _BYTES:
            raise MessageInvalid("txs frame: a list of byte strings")
        self.stats["txs_received"] += len(payload)
        fresh = []
        hashes = []
        for raw in payload:
            tx_hash = sha256(raw)
            if tx_hash not in self._arriving and tx_hash not in self.mempool:  # verified by a block's precheck: admitted all the same
                fresh.append(raw)
                hashes.append(tx_hash)
                self._wanted.pop(tx_hash, None)
        if not fresh:
            return
        assert self._tx_batches is not None
        size = sum(map(len, fresh))
        if len(self._arriving) + len(fresh) > self.mempool.max_txs or self._arriving_bytes + size > self.mempool.max_bytes:
            self.stats["tx_batches_dropped"] += 1  # more unchecked than the pool could hold: a flood
            return
        try:
            self._tx_batches.put_nowait((None if peer is None else peer.node_id, fresh, hashes))
        except asyncio.QueueFull:
            self.stats["tx_batches_dropped"] += 1
            return
        self._arriving.update(hashes)
        self._arriving_bytes += size

    def _receive_tx_hashes(self, peer: Peer, payload: Any) -> None:
        """A peer announces transactions it admitted from another peer: note the ones not here, and
        ask for them if they have not arrived whole after TX_FETCH_DELAY_S."""
        hashes = _hash_list(payload, "tx_hashes")
        now = time.monotonic()
        for tx_hash in hashes:
            if tx_hash not in self._wanted and tx_hash not in self._arriving and _is_new_tx(tx_hash, self.mempool, self.verified):
                self._wanted[tx_hash] = (peer.node_id, now)
        while len(self._wanted) > MAX_WANTED_TXS:
            self._wanted.popitem(last=False)
        if self._wanted and not self._fetch_scheduled:
            self._fetch_scheduled = True
            asyncio.get_running_loop().call_later(TX_FETCH_DELAY_S, self._fetch_wanted)

    def _fetch_wanted(self) -> None:
        """Ask each announcer for the announced transactions still missing after the delay."""
        self._fetch_scheduled = False
        due = time.monotonic() - TX_FETCH_DELAY_S
        asks: dict[bytes, list[bytes]] = {}
        while self._wanted:
            tx_hash, (node_id, announced) = next(iter(self._wanted.items()))
            if announced > due:
                break
            del self._wanted[tx_hash]
            if _is_new_tx(tx_hash, self.mempool, self.verified):
                asks.setdefault(node_id, []).append(tx_hash)
        for node_id, hashes in asks.items():
            peer = self.p2p.peers.get(node_id)
            if peer is None:
                continue  # gone: the transaction reaches us in a block, or by another announcement
            self.stats["txs_asked"] += len(hashes)
            for i in range(0, len(hashes), TX_HASHES_PER_FRAME):
                self.p2p.send(peer, "get_txs", hashes[i : i + TX_HASHES_PER_FRAME])
        if self._wanted:  # again when the oldest still waited for falls due (they are in announcement order)
            _, oldest = next(iter(self._wanted.values()))
            self._fetch_scheduled = True
            delay = max(0.01, oldest + TX_FETCH_DELAY_S - time.monotonic())
            asyncio.get_running_loop().call_later(delay, self._fetch_wanted)

    def _serve_txs(self, peer: Peer, payload: Any) -> None:
        """Answer `get_txs` with the asked transactions this mempool holds (up to TX_GOSSIP_MAX_BYTES)."""
        raws = []
        size = 0
        for tx_hash in _hash_list(payload, "get_txs"):
            tx = self.mempool.get(tx_hash)
            if tx is None:
                continue
            if size + len(tx.raw) > TX_GOSSIP_MAX_BYTES:
                break
            raws.append(tx.raw)
            size += len(tx.raw)
        if raws:
            self.p2p.send(peer, "txs", raws)

    async def _tx_check_loop(self) -> None:
        """Peers' transactions to the verifier: every batch queued meanwhile goes in one
        call, up to TX_CHECKS_IN_FLIGHT calls in flight; `_tx_admission_loop` takes them in order."""
        assert self._tx_batches is not None and self._tx_checks is not None
        while True:
            batches = [await self._tx_batches.get()]
            if len(batches[0][1]) < TX_CHECK_GATHER and self._tx_batches.empty():
                await asyncio.sleep(TX_CHECK_GATHER_S)  # a few peers' frames make one call
            while not self._tx_batches.empty() and sum(len(b[1]) for b in batches) < TX_CHECK_BATCH_MAX:
                batches.append(self._tx_batches.get_nowait())
            known: dict[bytes, Tx | Rejected] = {}  # checked already (a block's precheck): admitted as they are
            raws, raw_hashes = [], []
            for _, batch, hashes in batches:
                for raw, tx_hash in zip(batch, hashes):
                    if tx_hash in self.mempool:
                        continue
                    if tx_hash not in self.verified:
                        raws.append(raw)
                        raw_hashes.append(tx_hash)
                    else:  # checked here before: decoded again if need be (committed), never checked again
                        known[raw] = self.verified.decoded(raw) or _decoded_again(raw, tx_hash)
            check = asyncio.ensure_future(self._verifier.check(raws, self.chain_id, raw_hashes))
            self._tasks.add(check)  # cancelled by stop; its failure costs one batch, not the node (below)
            check.add_done_callback(self._tasks.discard)
            await self._tx_checks.put((batches, raws, known, check))  # waits while TX_CHECKS_IN_FLIGHT are

    async def _tx_admission_loop(self) -> None:
        """Admission on the loop, in arrival order, of what the verifier checked."""
        assert self._tx_checks is not None and self._mempool_ready is not None
        while True:
            batches, raws, results, check = await self._tx_checks.get()
            try:
                results.update(zip(raws, await check))
                await self._mempool_ready.wait()
                for source, batch, _ in batches:
                    checked = [results[raw] for raw in batch if raw in results]
                    self.mempool.add_prevalidated(checked, source=source)
            except (InvariantViolation, ConsensusInvariantViolation):
                raise  # fatal, as everywhere: the node stops (`_task_done`)
            except Exception:  # never expected; one batch lost, the loop goes on
                log.exception("admitting checked transactions")
            finally:
                for _, batch, hashes in batches:
                    self._arriving.difference_update(hashes)
                    self._arriving_bytes -= sum(map(len, batch))

    async def _tx_gossip_loop(self) -> None:
        while True:
            await asyncio.sleep(TX_GOSSIP_INTERVAL_S)
            waiting = self._waiting_for_txs
            if waiting is not None and len(self.mempool) and time.monotonic() >= waiting[1]:
                self._waiting_for_txs = None
                self._feed(Start(waiting[0]))  # a transaction ended the empty-block wait
            outbox = self.mempool.drain_added()
            if outbox or self._to_announce:
                self._gossip_txs(outbox)

    def _gossip_txs(self, outbox: list[Added]) -> None:
        """A client's transactions go whole to every peer. A peer's are announced by hash to the
        other peers its source is not linked to (RELAY-1), every TX_ANNOUNCE_INTERVAL_S, and they
        ask for those that did not reach them whole (`_receive_tx_hashes`): in a full mesh each
        node receives each transaction once and no announcement, and beyond it they still spread."""
        frame: list[bytes] = []
        size = 0
        for added in outbox:
            if added.source is not None:
                continue
            if frame and size + len(added.raw) > TX_GOSSIP_MAX_BYTES:
                self.p2p.broadcast("txs", frame)
                frame, size = [], 0
            frame.append(added.raw)
            size += len(added.raw)
        if frame:
            self.p2p.broadcast("txs", frame)
        self._to_announce.extend(added for added in outbox if added.source is not None)
        now = time.monotonic()
        if not self._to_announce or now < self._announce_at:
            return
        relayed, self._to_announce = self._to_announce, []
        self._announce_at = now + TX_ANNOUNCE_INTERVAL_S
        peers = list(self.p2p.peers.values())
        links = {p.node_id: self._linked_both_ways(p.node_id) for p in peers}
        for peer in peers:
            node_id = peer.node_id  # not back to the source, nor to those linked to the source (RELAY-1)
            hashes = [added.hash for added in relayed if added.source != node_id and node_id not in links.get(added.source, _NO_LINKS)]  # type: ignore[arg-type]
            for i in range(0, len(hashes), TX_HASHES_PER_FRAME):
                self.p2p.send(peer, "tx_hashes", hashes[i : i + TX_HASHES_PER_FRAME])

    async def wait_for_tx(self, tx_hash: bytes, timeout_s: float) -> TxResult | None:
        known = self.get_tx(tx_hash) if self.blocks.tx_index_from is not None else self._recently_committed(tx_hash)
        if known is not None:
            return known
        if sum(len(w) for w in self._waiters.values()) >= MAX_TX_WAITERS:
            return None
        future: asyncio.Future[TxResult] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_hash, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            waiting = self._waiters.get(tx_hash, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiters.pop(tx_hash, None)

    def _recently_committed(self, tx_hash: bytes) -> TxResult | None:
        return self._tx_at(tx_hash, self._recent_commits.get(tx_hash))

    def _tx_at(self, tx_hash: bytes, location: tuple[int, int] | None) -> TxResult | None:
        """The committed transaction at (height, index), read from its block."""
        if location is None:
            return None
        height, index = location
        block = self.blocks.block(height)
        if block is None or index >= len(block.txs):
            return None
        return TxResult(tx_hash, height, index, block.header.time_ms, block.txs[index])

    def _require_tx_index(self) -> None:
        if self.blocks.tx_index_from is None:
            raise TxIndexDisabled("this node keeps no transaction index (tx_index.enabled is false in its config); ask a node that does")

    def get_tx(self, tx_hash: bytes) -> TxResult | None:
        self._require_tx_index()
        return self._tx_at(tx_hash, self.blocks.tx_location(tx_hash))

    def get_account_txs(self, address: bytes, limit: int, before: tuple[int, int] | None) -> list[TxResult]:
        self._require_tx_index()
        results = []
        for tx_hash in self.blocks.account_tx_hashes(address, limit, before):
            result = self.get_tx(tx_hash)
            if result is not None:
                results.append(result)
        return results

    # blocks and validators for the RPC ---------------------------------------------------------------
    def get_block(self, height: int) -> dict[str, Any] | None:
        block = self.blocks.block(height)
        certificate = self.blocks.certificate(height)
        if block is None or certificate is None:
            return None
        return block_to_json(block, certificate)

    def validators(self, height: int) -> list[dict[str, Any]] | None:
        head = self._ledger.head.height
        if height > head + 1 or height < 0:
            return None
        try:
            infos = self.app.validator_infos(max(height, 1))
        except BlockRefused:
            return None
        return [v.to_json() for v in infos if v.power > 0]

    def status_extra(self) -> dict[str, Any]:
        head = self._ledger.head.height
        block_hash = self.blocks.block_hash(head) if head > 0 else None
        return {
            "syncing": self.sync.is_syncing(head),
            "peers": len(self.p2p.peers),
            "is_validator": self.is_validator(),
            "block_hash": None if block_hash is None else block_hash.hex(),
            "tx_index_from_height": self.blocks.tx_index_from,
            "moniker": self.config.moniker,
            "node_id": self.address.hex(),
            "consensus": {"height": self.engine.height, "round": self.engine.round, "step": self.engine.step.name.lower()},
            "mempool": {"txs": len(self.mempool), "bytes": self.mempool.size_bytes, **self.mempool.stats},
            "p2p": dict(self.p2p.stats),
            "node_stats": dict(self.stats),
            "signature_checks": {"inline": self._inline_checks.checked, "spared": self._inline_checks.spared},
        }

    def subscribe_blocks(self) -> asyncio.Queue[dict[str, Any] | None]:
        return self.feed.subscribe()

    def unsubscribe_blocks(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.feed.unsubscribe(queue)

    # block sync --------------------------------------------------------------------------------------
    def _serve_blocks(self, peer: Peer, from_height: int, count: int) -> None:
        items = serve_blocks(self.blocks, from_height, count, self._ledger.head.height, self.config.p2p.max_message_bytes // 2)
        self.p2p.send(peer, "blocks", {"items": items})

    def _receive_blocks(self, peer: Peer, payload: Any) -> None:
        request = self.sync.outstanding
        if request is None or request.peer != peer.node_id or self._applying_sync:
            return  # unsolicited
        items = payload.get("items") if isinstance(payload, dict) else None
        if not isinstance(items, list) or len(items) > MAX_BLOCKS_PER_REQUEST:
            self.sync.on_response(peer.node_id, ok=False)
            raise MessageInvalid("blocks frame: a list of at most 32 [block, certificate] pairs")
        self._applying_sync = True
        self._spawn(self._apply_synced(peer, items))

    async def _apply_synced(self, peer: Peer, items: list[Any]) -> None:
        ok = bool(items)
        try:
            for item in items:
                if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, bytes) for x in item)):
                    ok = False
                    break
                block_bytes, certificate_bytes = item
                try:
                    if CommitCertificate.from_bytes(certificate_bytes).height <= self._ledger.head.height:
                        continue
                    committed = self.app.apply_synced(block_bytes, certificate_bytes)
                except (BlockRefused, MessageInvalid) as exc:
                    self.stats["sync_refused"] += 1
                    log.warning("block sync: refused a block from %s: %s", peer.name, exc)
                    ok = False
                    break
                self._after_commit(committed)
                self._feed(Start(committed.block.header.height + 1))
                await asyncio.sleep(0)  # let consensus and the RPC breathe between blocks
        finally:
            self._applying_sync = False
            self.sync.on_response(peer.node_id, ok)
        if ok:
            self._request_blocks()  # still behind: the next batch at once, not at the next tick

    # periodic gossip ---------------------------------------------------------------------------------
    async def _gossip_loop(self) -> None:
        interval_s = self.config.consensus.gossip_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            head = self._ledger.head.height
            self.p2p.broadcast("status", self._status())
            self._request_blocks()
            progress = (self.engine.height, self.engine.round, int(self.engine.step))
            if progress == self._last_progress:
                self._resend_current_round()
            self._last_progress = progress

    def _request_blocks(self) -> None:
        request = self.sync.next_request(self._ledger.head.height, time.monotonic())
        if request is None:
            return
        peer = self.p2p.peers.get(request.peer)  # type: ignore[arg-type]
        if peer is None:
            self.sync.on_disconnect(request.peer)
            return
        log.info("block sync: asking %s for %d blocks from %d", peer.name, request.count, request.from_height)
        self.p2p.send(peer, "get_blocks", {"from": request.from_height, "count": request.count})

    def _resend_current_round(self) -> None:
        """The height is stuck: resend what we signed in the current round and the block our
        proposal of this round names, and what we passed on of this round and the blocks its
        proposals name, that to every peer but the one it came from whatever the links (RELAY-2:
        a link counted on may have closed, or a peer that forwarded it first may not have sent it
        on; peers drop duplicates)."""
        height, current_round = self.engine.height, self.engine.round
        own = [m for m in self._own if m[0] == height]
        passed_on = [m for m in self._passed_on if m.height == height]
        proposed = {p["block_hash"] for _, r, kind, p, *_ in [*own, *passed_on] if kind == "proposal" and r == current_round}
        for _, round, kind, payload in own:
            if round == current_round or (kind == "block" and payload["hash"] in proposed):
                self.p2p.broadcast(kind, payload)
        for _, round, kind, payload, source, _ in passed_on:
            if round == current_round or (kind == "block" and payload["hash"] in proposed):
                self.p2p.broadcast(kind, payload, exclude=self.p2p.peers.get(source))


# helpers ------------------------------------------------------------------------------------------------
class _PassedOn(NamedTuple):
    """A consensus message first seen from a peer, kept until its height is committed (RELAY-2)."""

    height: int
    round: int  # -1 for a block: it belongs to whichever proposal names it
    kind: str
    payload: Any
    source: bytes
    """The node id of the peer it came from."""
    size: int
    """As counted against MAX_PASSED_ON_BYTES: a block's bytes, 512 for a vote or a proposal."""


@dataclass(frozen=True)
class _HeldBlock:
    """A proposal's block held back until its time is within the clock drift (Block time rule)."""

    height: int
    payload: dict[str, Any]


def _event_round(event: Event) -> int:
    if isinstance(event, VoteReceived):
        return event.vote.round
    if isinstance(event, ProposalReceived):
        return event.proposal.round
    return -1  # a block belongs to whichever proposal names it


def _int_field(payload: Any, name: str) -> int:
    value = payload.get(name) if isinstance(payload, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise MessageInvalid(f"field {name!r} must be a non-negative integer")
    return value


def _message_id(kind: str, payload: Any) -> bytes:
    """What a message is known by in `_seen`: a block by its hash (checked against its bytes before
    it is marked), a vote or a proposal by the digest of all its fields. Not by its signature: a
    copy that carries a genuine signature over other fields (refused by the engine) would make the
    genuine message, arriving later, look seen, and a peer could so keep a validator's votes from
    this node for good."""
    if kind == "block":
        return b"b" + payload["hash"]
    return kind.encode()[:1] + sha256(encode_fast(payload))


_BYTES = frozenset((bytes,))
_HASH_LENGTH = frozenset((32,))
_NO_LINKS: frozenset[bytes] = frozenset()
MAX_LINKS_LISTED = 1024
"""Node ids a status frame may list as the sender's links."""


def _links_field(payload: Any) -> frozenset[bytes]:
    """The `peers` of a status frame: node ids, 32 bytes each. A status without it (a node of an
    earlier version) lists none, so that peer is relayed everything."""
    links = payload.get("peers", [])
    if (
        not isinstance(links, list)
        or len(links) > MAX_LINKS_LISTED
        or not set(map(type, links)) <= _BYTES
        or not set(map(len, links)) <= _HASH_LENGTH
    ):
        raise MessageInvalid(f"status frame: peers must be a list of at most {MAX_LINKS_LISTED} 32-byte node ids")
    return frozenset(links)


def _hash_list(payload: Any, kind: str) -> list[bytes]:
    if (
        not isinstance(payload, list)
        or len(payload) > TX_HASHES_PER_FRAME
        or not set(map(type, payload)) <= _BYTES  # C loops, not a Python one per hash
        or not set(map(len, payload)) <= _HASH_LENGTH
    ):
        raise MessageInvalid(f"{kind} frame: a list of at most {TX_HASHES_PER_FRAME} 32-byte hashes")
    return payload


def _decoded_again(raw: bytes, tx_hash: bytes) -> Tx | Rejected:
    """A transaction whose signatures this node checked, whose decoded form it no longer keeps (it
    was committed: `SignatureCache.forget_decoded`): decoded, its hash as computed."""
    try:
        return decode_tx(raw, tx_hash)
    except Rejected as exc:  # it decoded when it was checked: cannot happen
        return detached(exc)


def _is_new_tx(tx_hash: bytes, mempool: Mempool, verified: SignatureCache) -> bool:
    """Neither pending nor already verified here (verified and not pending: committed or evicted)."""
    return tx_hash not in mempool and tx_hash not in verified

"""Signature checks in worker processes, so they never wait for the event loop's thread.

A thread would not do: libsodium releases the GIL for the check itself, but the thread needs it back
after every signature, and a busy event loop holds it for up to the switch interval each time. On
a loaded validator that made a check cost a millisecond instead of 65 µs, and blocks waited for
their transactions' checks. So `Verifier` sends batches of wire bytes to `workers` processes that
decode and check them (`check_batch`) and answer one small verdict per transaction; the node then
parses the ones that passed without checking their form again (`trusted_tx`: cheap next to the
check) and remembers them in its SignatureCache.
Each signature is still checked once per node: the workers are this node's own code.

Each worker is a spawned process (a fresh interpreter, never a fork of this one) joined to the node
by a socket pair: a batch goes down as one length-prefixed msgpack frame and its verdicts come back
as one, in order, read by the event loop itself. No executor: concurrent.futures' process pool
costs a manager thread and a feeder thread that contend for the GIL, about 0.6 ms of the node's
CPU per batch, more than the signatures of a small batch.

Workers run under the scheduler's batch policy where the system allows it (`run_as_batch_job`): a
batch sent to a worker wakes it, and with the default policy the woken worker preempted its own
node's event loop on that core.

With no workers (`Verifier(0)`, the setting `mempool.signature_workers = 0`) the checks run in the
node's own process, on the event loop: one task (`InlineChecks`, shared by a node's two verifiers)
checks INLINE_CHUNK transactions a turn of the loop, a priority verifier's batches before the
others, so a loop turn holds at most one chunk of checks however many batches wait, and a block's
unseen transactions do not queue behind gossip. That is for a node that shares its cores with other
busy processes (a devnet of at least as many validators as cores): there a worker adds no core to
check on, and sending it the wire bytes and parsing what it passed (`trusted_tx`) is pure
overhead. On the benchmark's 2-core devnet of 4 validators, A/B/A at 3,000/s: 128-132 µs of CPU
per transfer per validator inline, 144 and 135 with workers.

If a worker dies (killed from outside), its batches in flight fail over to a new worker, rerun
once; if that fails too, the batch is checked in this process. A worker exits by itself when its
node is gone, however the node ended: the node's end of the socket closes and the worker reads the
end of its input. Nothing a peer sends reaches a worker except bytes, and every outcome of decoding
bytes is a verdict, so no input can break it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import os
import socket
import struct

import msgpack

from ledger import Rejected, Tx, decode_tx, detached
from ledger.errors import Code
from ledger.tx import SignatureCache, trusted_tx, verify_tx_signatures

__all__ = ["InlineChecks", "Verifier", "check_batch", "prevalidate", "run_as_batch_job"]

log = logging.getLogger("hearth.verifier")

Verdict = tuple[int, str] | None
"""None: decoded, for this chain, every signature valid. Otherwise (Code number, message)."""

_CODES = {code.number: code for code in Code}
_LENGTH = struct.Struct(">I")
STOP_WAIT_S = 2.0
"""How long `stop` waits for a worker to exit after its socket closes, before killing it."""
INLINE_CHUNK = 256
"""Transactions checked between two turns of the event loop when a verifier has no workers (about
14 ms of decoding and signature checks)."""


def prevalidate(raws: list[bytes], chain_id: str, hashes: list[bytes] | None = None) -> list[Tx | Rejected]:
    """Decode and verify signatures, without state (what a worker runs; also the fallback in this
    process; `hashes`: each raw's sha256, if the caller has them). The caller remembers the returned
    `Tx`s in its SignatureCache."""
    # every transaction decoded, then every signature checked: checks one after another keep
    # libsodium's tables in the processor's caches
    out: list[Tx | Rejected] = []
    for i, raw in enumerate(raws):
        try:
            tx = decode_tx(raw, None if hashes is None else hashes[i])
            if tx.body["chain"] != chain_id:
                raise Rejected(Code.WRONG_CHAIN, f"transaction is for chain {tx.body['chain']!r}, this is {chain_id!r}")
            out.append(tx)
        except Rejected as exc:
            out.append(detached(exc))
    for i, tx in enumerate(out):
        if type(tx) is Tx:
            try:
                verify_tx_signatures(tx, chain_id)
            except Rejected as exc:
                out[i] = detached(exc)
    return out


def check_batch(raws: list[bytes], chain_id: str) -> list[Verdict]:
    """In a worker: one verdict per transaction."""
    return [item if item is None else (item.code.number, item.message) for item in _verdicts(raws, chain_id)]


def _verdicts(raws: list[bytes], chain_id: str) -> list[Rejected | None]:
    return [exc if isinstance(exc, Rejected) else None for exc in prevalidate(raws, chain_id)]


def _decoded(raws: list[bytes], verdicts: list[Verdict], hashes: list[bytes] | None = None) -> list[Tx | Rejected]:
    """The node's side: parse what the worker passed (`hashes`: the raws' hashes, when the caller
    has them already); rebuild the refusals."""
    out: list[Tx | Rejected] = []
    for i, (raw, verdict) in enumerate(zip(raws, verdicts, strict=True)):
        if verdict is None:
            try:
                out.append(trusted_tx(raw, None if hashes is None else hashes[i]))
            except Exception:  # the worker decoded these very bytes: cannot happen; check fully
                try:
                    out.append(decode_tx(raw))
                except Rejected as exc:
                    out.append(detached(exc))
        else:
            number, message = verdict
            out.append(Rejected(_CODES.get(number, Code.TX_MALFORMED), message))
    return out


def run_as_batch_job() -> bool:
    """Put this process under the scheduler's batch policy (Linux SCHED_BATCH): the same share of
    the CPU, but its wakeup does not preempt the task running on that core. Without it, each batch the
    node sends wakes its worker, which preempts the node's own event loop on the same core and holds
    it until the worker yields: on a loaded 2-core devnet a write of a few KB to a worker stalled the
    loop for 0.9 ms on average. Whether the policy was set (elsewhere the default scheduling stays)."""
    policy = getattr(os, "SCHED_BATCH", None)
    set_policy = getattr(os, "sched_setscheduler", None)
    if policy is None or set_policy is None:
        return False
    try:
        set_policy(0, policy, os.sched_param(0))
    except OSError:  # refused (a container's seccomp filter, say): the worker runs all the same
        return False
    return True


def _worker_main(sock: socket.socket) -> None:
    """A worker: read a batch, answer its verdicts, until the node's end closes."""
    run_as_batch_job()
    with sock:
        while True:
            header = _receive_exactly(sock, _LENGTH.size)
            if header is None:
                return  # the node is gone or stopped us
            data = _receive_exactly(sock, _LENGTH.unpack(header)[0])
            if data is None:
                return
            chain_id, raws = msgpack.unpackb(data)
            answer = msgpack.packb(check_batch(raws, chain_id))
            sock.sendall(_LENGTH.pack(len(answer)) + answer)


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class _InlineBatch:
    __slots__ = ("raws", "chain_id", "hashes", "done", "out", "future")

    def __init__(
        self, raws: list[bytes], chain_id: str, future: asyncio.Future[list[Tx | Rejected]], hashes: list[bytes] | None = None
    ) -> None:
        self.raws, self.chain_id, self.future, self.hashes = raws, chain_id, future, hashes
        self.done = 0
        self.out: list[Tx | Rejected] = []


class InlineChecks:
    """`prevalidate` in this process for verifiers without workers: one task, INLINE_CHUNK
    transactions a turn of the event loop, the oldest priority batch first, else the oldest other.

    With the node's SignatureCache (`cache`), each chunk's transactions are looked up first and
    those it holds decoded are answered from it, not checked again; what a chunk passes goes into it
    at once. A batch waits its turn, and meanwhile the same transactions can be checked in another
    one: on a loaded node a block's unseen transactions (a priority batch) are often those of a
    gossip batch still waiting, and were checked twice, 40 µs each, the more the busier the node."""

    def __init__(self, cache: SignatureCache | None = None) -> None:
        self._waiting: tuple[collections.deque[_InlineBatch], collections.deque[_InlineBatch]] = (collections.deque(), collections.deque())
        self._task: asyncio.Task[None] | None = None
        self._cache = cache
        self.checked = 0
        """Transactions decoded and checked here."""
        self.spared = 0
        """Transactions of a batch answered from the cache: checked meanwhile, elsewhere or in another batch."""

    async def check(
        self, raws: list[bytes], chain_id: str, priority: bool = False, hashes: list[bytes] | None = None
    ) -> list[Tx | Rejected]:
        """`prevalidate(raws, chain_id, hashes)`, a chunk a turn of the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Tx | Rejected]] = loop.create_future()
        self._waiting[0 if priority else 1].append(_InlineBatch(raws, chain_id, future, hashes))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        priority, others = self._waiting
        while priority or others:
            queue = priority or others
            batch = queue[0]
            if batch.future.done():  # its caller gave up (cancelled)
                queue.popleft()
                continue
            try:
                end = batch.done + INLINE_CHUNK
                hashes = None if batch.hashes is None else batch.hashes[batch.done : end]
                batch.out += self._check_chunk(batch.raws[batch.done : end], batch.chain_id, hashes)
            except Exception as exc:  # a bug (every input has a verdict): that caller fails, not the others
                queue.popleft()
                batch.future.set_exception(exc)
                continue
            batch.done += INLINE_CHUNK
            if batch.done >= len(batch.raws):
                queue.popleft()
                batch.future.set_result(batch.out)
            await asyncio.sleep(0)  # the loop's other callbacks run between two chunks

    def _check_chunk(self, raws: list[bytes], chain_id: str, hashes: list[bytes] | None = None) -> list[Tx | Rejected]:
        cache = self._cache
        if cache is None:
            self.checked += len(raws)
            return prevalidate(raws, chain_id, hashes)
        known = [cache.decoded(raw) for raw in raws]  # the node's cache: only transactions for its chain
        unknown = [raw for raw, tx in zip(raws, known) if tx is None]
        if hashes is not None and len(unknown) < len(raws):
            hashes = [h for h, tx in zip(hashes, known) if tx is None]
        self.checked += len(unknown)
        self.spared += len(raws) - len(unknown)
        checked = prevalidate(unknown, chain_id, hashes)
        for item in checked:
            if type(item) is Tx:
                cache.remember(item)
        if len(unknown) == len(raws):
            return checked
        answers = iter(checked)
        return [next(answers) if tx is None else tx for tx in known]


class WorkerGone(Exception):
    """A worker process ended with batches in flight."""


class _Worker:
    """One worker process and the node's end of its socket. Batches are answered in the order
    sent, so each answer resolves the oldest waiting future."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = socket.socketpair()
        self.process = context.Process(target=_worker_main, args=(theirs,), name="hearth-verifier", daemon=True)
        try:
            self.process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker holds its own copy; ours must not keep its end open
        self._socket = ours
        self._waiting: collections.deque[asyncio.Future[list[Verdict]]] = collections.deque()
        self._writer: asyncio.StreamWriter | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._reading: asyncio.Task[None] | None = None
        self.alive = True

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def _connect(self) -> None:
        try:
            reader, self._writer = await asyncio.open_connection(sock=self._socket)
        except Exception:  # stopped meanwhile, or the socket is unusable: its checks go elsewhere
            self.alive = False
            return
        self._reading = asyncio.ensure_future(self._read(reader))

    async def check(self, raws: list[bytes], chain_id: str) -> list[Verdict]:
        if self._writer is None:
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
            await asyncio.shield(self._connecting)
        if not self.alive or self._writer is None:
            raise WorkerGone()
        data = msgpack.packb((chain_id, raws))
        future: asyncio.Future[list[Verdict]] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._writer.write(_LENGTH.pack(len(data)) + data)
        return await future

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                size = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))[0]
                verdicts = msgpack.unpackb(await reader.readexactly(size), use_list=False)
                future = self._waiting.popleft()
                if not future.done():
                    future.set_result(list(verdicts))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, IndexError):
            pass
        finally:
            self._fail_waiting()

    def _fail_waiting(self) -> None:
        self.alive = False
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(WorkerGone())

    def stop(self) -> None:
        self.alive = False
        if self._connecting is not None:
            self._connecting.cancel()
        if self._reading is not None:
            self._reading.cancel()
        if self._writer is not None:
            self._writer.transport.abort()  # the transport owns the socket: closed now, unsent bytes dropped
        else:
            self._socket.close()
        self.process.join(STOP_WAIT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_WAIT_S)
        self._fail_waiting()


class Verifier:
    """`workers` processes checking signatures; `check` is awaited on the event loop. With none,
    `inline` checks here (shared by a node's verifiers; `priority`: this one's batches go first)."""

    def __init__(self, workers: int = 2, inline: InlineChecks | None = None, priority: bool = False) -> None:
        self.workers = workers
        self._inline = inline if inline is not None else InlineChecks()
        self._priority = priority
        self._pool: list[_Worker] = []
        self.restarts = 0
        self._stopped = False

    def start(self) -> None:
        """Start the workers now, not on the first real check (an interpreter takes a while)."""
        self._stopped = False
        self._fill()

    def _fill(self) -> None:
        while len(self._pool) < self.workers and not self._stopped:
            try:
                self._pool.append(_Worker())
            except OSError as exc:  # cannot even start one: checks fall back to this process
                log.warning("signature worker did not start: %s", exc)
                return

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._pool if w.process.pid is not None]

    def stop(self) -> None:
        """Stop the workers. A check still running then finishes in this process; none starts a
        worker again until `start`."""
        self._stopped = True
        pool, self._pool = self._pool, []
        for worker in pool:
            worker.stop()

    async def check(self, raws: list[bytes], chain_id: str, hashes: list[bytes] | None = None) -> list[Tx | Rejected]:
        """Each transaction decoded with valid signatures, or why not; in order. `hashes`, if the
        caller has them: the sha256 of each raw (spares computing them again)."""
        if not raws:
            return []
        if hashes is not None and len(hashes) != len(raws):
            raise ValueError("one hash per transaction")
        if self.workers == 0:
            return await self._inline.check(raws, chain_id, self._priority, hashes)
        for _ in range(2):  # a batch whose worker died runs once more, on a new one
            self._replace_dead()
            live = [w for w in self._pool if w.alive]
            if not live:
                break
            worker = min(live, key=lambda w: w.in_flight)
            try:
                return _decoded(raws, await worker.check(raws, chain_id), hashes)
            except WorkerGone:
                continue
        return prevalidate(raws, chain_id, hashes)

    def _replace_dead(self) -> None:
        for worker in [w for w in self._pool if not w.alive]:
            log.warning("signature worker %s ended; starting another", worker.process.pid)
            self.restarts += 1
            self._pool.remove(worker)
            worker.stop()
        self._fill()

"""Signature checks in worker processes, so they never wait for the event loop's thread.

A thread would not do: libsodium releases the GIL for the check itself, but the thread needs it back
after every signature, and a busy event loop holds it for up to the switch interval each time. On
a loaded validator that made a check cost a millisecond instead of 65 µs, and blocks waited for
their transactions' checks. So `Verifier` sends batches of wire bytes to `workers` processes that
decode and check them (`check_batch`) and answer one small verdict per transaction; the node then
parses the ones that passed without checking their form again (`trusted_tx`: cheap next to the
check) and remembers them in its SignatureCache.
Each signature is still checked once per node: the workers are this node's own code.

If the pool breaks (a worker killed from outside), it is started again and the batch rerun once;
if that fails too, the batch is checked in this process. A worker exits by itself within
PARENT_POLL_S when its node is gone, however the node ended. Nothing a peer sends reaches a worker
except bytes, and every outcome of decoding bytes is a verdict, so no input can break it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures.process import BrokenProcessPool

from ledger import Rejected, Tx, decode_tx
from ledger.errors import Code
from ledger.tx import trusted_tx, verify_tx_signatures

__all__ = ["Verifier", "check_batch", "prevalidate"]

log = logging.getLogger("hearth.verifier")

Verdict = tuple[int, str] | None
"""None: decoded, for this chain, every signature valid. Otherwise (Code number, message)."""

_CODES = {code.number: code for code in Code}


PARENT_POLL_S = 0.5


def _watch_parent(parent_pid: int) -> None:
    """In a worker, at start: exit as soon as the node is gone. A node killed with SIGKILL tells
    its workers nothing, and they would live on, orphaned."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="hearth-verifier-watch", daemon=True).start()


def prevalidate(raws: list[bytes], chain_id: str) -> list[Tx | Rejected]:
    """Decode and verify signatures, without state (what a worker runs; also the fallback in this
    process). The caller remembers the returned `Tx`s in its SignatureCache."""
    out: list[Tx | Rejected] = []
    for raw in raws:
        try:
            tx = decode_tx(raw)
            if tx.body["chain"] != chain_id:
                raise Rejected(Code.WRONG_CHAIN, f"transaction is for chain {tx.body['chain']!r}, this is {chain_id!r}")
            verify_tx_signatures(tx, chain_id)
            out.append(tx)
        except Rejected as exc:
            out.append(exc)
    return out


def check_batch(raws: list[bytes], chain_id: str) -> list[Verdict]:
    """In a worker: one verdict per transaction."""
    return [item if item is None else (item.code.number, item.message) for item in _verdicts(raws, chain_id)]


def _verdicts(raws: list[bytes], chain_id: str) -> list[Rejected | None]:
    return [exc if isinstance(exc, Rejected) else None for exc in prevalidate(raws, chain_id)]


def _decoded(raws: list[bytes], verdicts: list[Verdict]) -> list[Tx | Rejected]:
    """The node's side: parse what the worker passed; rebuild the refusals."""
    out: list[Tx | Rejected] = []
    for raw, verdict in zip(raws, verdicts, strict=True):
        if verdict is None:
            try:
                out.append(trusted_tx(raw))
            except Exception:  # the worker decoded these very bytes: cannot happen; check fully
                try:
                    out.append(decode_tx(raw))
                except Rejected as exc:
                    out.append(exc)
        else:
            number, message = verdict
            out.append(Rejected(_CODES.get(number, Code.TX_MALFORMED), message))
    return out


class Verifier:
    """A pool of `workers` processes checking signatures; `check` is awaited on the event loop."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.restarts = 0

    def start(self) -> None:
        if self._pool is None:
            # spawn: a fresh interpreter, never a fork of this process and its threads' locks
            context = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_watch_parent, initargs=(os.getpid(),)
            )
            self._pool.submit(check_batch, [], "")  # start the workers now, not on the first real check

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def check(self, raws: list[bytes], chain_id: str) -> list[Tx | Rejected]:
        """Each transaction decoded with valid signatures, or why not; in order."""
        if not raws:
            return []
        loop = asyncio.get_running_loop()
        for _ in range(2):
            if self._pool is None:
                self.start()
            pool = self._pool
            assert pool is not None
            try:
                verdicts = await loop.run_in_executor(pool, check_batch, raws, chain_id)
                return _decoded(raws, verdicts)
            except BrokenProcessPool:
                if self._pool is pool:  # the first check to see it break replaces it; others retry
                    log.warning("signature worker pool broke; starting it again")
                    self.restarts += 1
                    self._pool = None
                    pool.shutdown(wait=False)  # its pending checks fail as broken and retry too
        return prevalidate(raws, chain_id)

"""An in-process node for RPC and CLI tests: NodeServices over a LedgerDB on a MemoryStore.

`commit` says when an admitted transaction is committed, each in its own block: "now" (before
submit_tx returns), "soon" (in a callback right after, so waiters really wait) or "manual" (the
test calls `commit_pending()`). `ServedNode` runs the fake
and a real RpcServer on 127.0.0.1 (an ephemeral port) in a background event loop thread, so
synchronous clients (urllib, the CLI under CliRunner, a subprocess) can talk to it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from consensus.node_services import BlockFeed, MempoolFull, TxResult, tx_addresses
from consensus.rpc_server import RpcConfig, RpcServer
from ledger import BlockInput, Genesis, LedgerDB, MemoryStore, Rejected, SignatureCache, process_tx
from ledger.constants import UNITS_PER_COIN
from ledger.crypto import sha256
from ledger.encoding import encode

T = TypeVar("T")

BLOCK_INTERVAL_MS = 1000


class FakeNode:
    def __init__(self, genesis: Genesis, *, commit: str = "now", mempool_max: int = 1000) -> None:
        assert commit in ("now", "soon", "manual")
        self.genesis = genesis
        self.ledger = LedgerDB(MemoryStore(), genesis)
        self.commit = commit
        self.mempool_max = mempool_max
        self.pending: list[bytes] = []
        self.blocks: dict[int, dict[str, Any]] = {}
        self.txs: dict[bytes, TxResult] = {}
        self.by_address: dict[bytes, list[TxResult]] = {}
        self.waiters: dict[bytes, list[asyncio.Future[TxResult]]] = {}
        self.feed = BlockFeed(queue_max=8, subscribers_max=64)
        self.verified = SignatureCache()
        self.extra: dict[str, Any] = {"syncing": False, "peers": 3, "is_validator": True}

    @property
    def chain_id(self) -> str:
        return self.genesis.chain_id

    # NodeServices ---------------------------------------------------------------------------------------
    async def submit_tx(self, raw: bytes) -> bytes:
        if len(self.pending) >= self.mempool_max:
            raise MempoolFull(f"{self.mempool_max} transactions pending")
        state = self.ledger.view()
        for earlier in self.pending:
            process_tx(state, earlier, self.verified)
        tx = self.ledger.check_tx(raw, self.verified, state)
        self.pending.append(raw)
        if self.commit == "now":
            self.commit_pending()
        elif self.commit == "soon":
            asyncio.get_running_loop().call_soon(self.commit_pending)
        return tx.hash

    async def submit_txs(self, raws: list[bytes]) -> list[bytes | Exception]:
        out: list[bytes | Exception] = []
        for raw in raws:
            try:
                out.append(await self.submit_tx(raw))
            except (Rejected, MempoolFull) as exc:
                out.append(exc)
        return out

    async def wait_for_tx(self, tx_hash: bytes, timeout_s: float) -> TxResult | None:
        if tx_hash in self.txs:
            return self.txs[tx_hash]
        future: asyncio.Future[TxResult] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(tx_hash, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            waiting = self.waiters.get(tx_hash, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self.waiters.pop(tx_hash, None)

    def get_tx(self, tx_hash: bytes) -> TxResult | None:
        return self.txs.get(tx_hash)

    def get_account_txs(self, address: bytes, limit: int, before: tuple[int, int] | None) -> list[TxResult]:
        found = []
        for result in reversed(self.by_address.get(address, [])):
            if before is None or (result.height, result.index) < before:
                found.append(result)
                if len(found) == limit:
                    break
        return found

    def get_block(self, height: int) -> dict[str, Any] | None:
        return self.blocks.get(height)

    def validators(self, height: int) -> list[dict[str, Any]] | None:
        if height > self.ledger.head.height:
            return None
        return [
            {"address": a.hex(), "name": name, "stake": stake, "power": stake // UNITS_PER_COIN}
            for a, name, stake in self.genesis.validators
        ]

    def status_extra(self) -> dict[str, Any]:
        head = self.blocks.get(self.ledger.head.height)
        return {**self.extra, "block_hash": None if head is None else head["header"]["hash"]}

    def subscribe_blocks(self) -> asyncio.Queue[dict[str, Any] | None]:
        return self.feed.subscribe()

    def unsubscribe_blocks(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.feed.unsubscribe(queue)

    # driving the chain -------------------------------------------------------------------------------------
    def commit_pending(self, time_ms: int | None = None) -> int | None:
        """Commit every pending transaction in one block (none if there are none)."""
        if not self.pending:
            return None
        txs, self.pending = self.pending, []
        return self.commit_block(txs, time_ms)

    def commit_block(self, txs: list[bytes] | tuple[bytes, ...] = (), time_ms: int | None = None) -> int:
        """Execute and commit the next block; its time defaults to one interval after the head's."""
        head = self.ledger.head
        height = head.height + 1
        t = head.time_ms + BLOCK_INTERVAL_MS if time_ms is None else time_ms
        executed = self.ledger.execute(BlockInput(height, t, tuple(txs)), self.verified)
        self.ledger.commit(executed)
        parent = self.blocks.get(head.height)
        header = {
            "height": height,
            "time_ms": t,
            "parent_hash": None if parent is None else parent["header"]["hash"],
            "state_root": self.ledger.state_root.hex(),
            "num_txs": len(executed.txs),
        }
        header["hash"] = sha256(encode(header)).hex()
        self.blocks[height] = {
            "header": header,
            "txs": [tx.raw.hex() for tx in executed.txs],
            "commit": {"height": height, "round": 0, "block_hash": header["hash"], "signatures": []},
        }
        for index, tx in enumerate(executed.txs):
            result = TxResult(tx.hash, height, index, t, tx.raw)
            self.txs[tx.hash] = result
            for address in tx_addresses(tx):
                self.by_address.setdefault(address, []).append(result)
            for future in self.waiters.pop(tx.hash, []):
                if not future.done():
                    future.set_result(result)
        self.feed.publish({"header": header, "tx_hashes": [tx.hash.hex() for tx in executed.txs]})
        return height


def post_raw(url: str, body: bytes, method: str = "POST") -> tuple[int, Any]:
    """Send raw bytes over HTTP; the status and the parsed JSON answer (None when empty)."""
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    return status, json.loads(data) if data else None


class ServedNode:
    """A FakeNode and its RpcServer on 127.0.0.1, running in a background event loop thread."""

    def __init__(self, genesis: Genesis, *, config: RpcConfig | None = None, commit: str = "now") -> None:
        self.config = config or RpcConfig(port=0, rate_per_s=1e6, rate_burst=1e6)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-node", daemon=True)
        self.thread.start()
        self.node = FakeNode(genesis, commit=commit)
        self.server = RpcServer(self.node, self.config)
        self.run_async(self.server.start())

    @property
    def url(self) -> str:
        return self.server.url

    def run_async(self, coro: Coroutine[Any, Any, T], timeout_s: float = 30) -> T:
        """Run a coroutine on the node's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def run(self, fn: Callable[[], T]) -> T:
        """Call `fn` on the node's loop thread (where the ledger lives) and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(call)
        return future.result(30)

    @staticmethod
    async def _cancel_leftovers() -> None:
        """End what closed connections left on the loop, so closing it destroys no pending task."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def post(self, body: bytes, path: str = "/", method: str = "POST") -> tuple[int, Any]:
        return post_raw(self.url + path, body, method)

    def close(self) -> None:
        self.run_async(self.server.close())
        self.run_async(self._cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self) -> "ServedNode":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

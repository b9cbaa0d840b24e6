"""The JSON-RPC 2.0 server every node runs: POST `/` (single calls and batches) and a websocket at
`/ws` that also serves subscriptions to new blocks and to a transaction's commit.

Robustness is the point of this module: whatever arrives, the answer is a JSON-RPC error or a
result, and nothing a client sends can crash the node or make it wait without bound. Each limit is
in RpcConfig: body size, batch size, body read time, calls per second per client, in-flight calls,
websocket connections, subscriptions per connection, and the outgoing queue of a slow websocket.
specs/rpc.md describes the protocol; consensus/rpc_methods.py holds the methods.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from consensus.node_services import NodeServices, TxResult
from consensus.rpc_methods import METHODS, CallContext, ErrorCode, RpcError, call_method, call_submit_txs, tx_result_to_json

log = logging.getLogger("hearth.rpc")

DEFAULT_PORT = 26657


@dataclass(frozen=True)
class RpcConfig:
    host: str = "127.0.0.1"
    """Loopback by default: exposing the RPC is a decision the operator makes explicitly."""
    port: int = DEFAULT_PORT  # 0 picks a free port (tests)
    max_body_bytes: int = 1 << 20
    max_batch: int = 100
    body_read_timeout_s: float = 10.0
    rate_per_s: float = 100.0
    """Calls per second each client (remote address) may sustain; a batch costs one per call."""
    rate_burst: float = 200.0
    rate_clients_max: int = 10_000
    max_in_flight: int = 1024
    """Calls being executed at once, across all clients; past it the answer is 'server busy'."""
    max_websockets: int = 256
    max_subscriptions_per_websocket: int = 32
    max_pending_per_websocket: int = 32
    max_ws_message_bytes: int = 1 << 20
    ws_send_queue_max: int = 256
    """A websocket whose unsent messages exceed this is too slow and is closed."""
    ws_heartbeat_s: float = 30.0
    max_id_chars: int = 256
    clock: Callable[[], float] = field(default=time.monotonic)

    def __post_init__(self) -> None:
        if self.max_batch > self.rate_burst:
            raise ValueError("rate_burst must allow a whole batch")


class RateLimiter:
    """A token bucket per client. The table of clients is bounded: when full, clients whose bucket
    has refilled are forgotten first (forgetting them changes nothing), then the least recent."""

    def __init__(self, rate_per_s: float, burst: float, clients_max: int, clock: Callable[[], float]) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._clients_max = clients_max
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def allow(self, client: str, cost: float = 1.0) -> bool:
        now = self._clock()
        entry = self._buckets.pop(client, None)
        if entry is None:
            self._make_room(now)
            tokens = self._burst
        else:
            tokens = min(self._burst, entry[0] + max(0.0, now - entry[1]) * self._rate)
        allowed = tokens >= cost
        self._buckets[client] = (tokens - cost if allowed else tokens, now)
        return allowed

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self._clients_max:
            return
        for client, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self._rate >= self._burst:
                del self._buckets[client]
        while len(self._buckets) >= self._clients_max:
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)


# JSON-RPC framing ------------------------------------------------------------------------------------
def rate_limited() -> RpcError:
    return RpcError(ErrorCode.RATE_LIMITED, "rate limit exceeded; slow down")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes) -> Any:
    """Parse a request body; raises RpcError(PARSE_ERROR) on anything that is not strict JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RpcError(ErrorCode.PARSE_ERROR, "parse error: the request is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise RpcError(ErrorCode.PARSE_ERROR, "parse error: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers with too many digits
        raise RpcError(ErrorCode.PARSE_ERROR, f"parse error: {str(exc)[:120]}") from None


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def dumps(obj: Any) -> str:
    """Compact JSON; NaN and infinities refused (ValueError). One encoder for every answer:
    `json.dumps` with arguments builds a new one per call, a third of a small answer's cost."""
    return _ENCODER.encode(obj)


def error_response(request_id: Any, error: RpcError) -> str:
    return dumps({"jsonrpc": "2.0", "id": request_id, "error": error.to_dict()})


_BAD_ID = error_response(None, RpcError(ErrorCode.INVALID_REQUEST, "id must be a string, a number or null"))


def submitted_answer(request_id: Any, tx_hash_hex: str) -> str:
    """The answer to an admitted `submit_tx`, `{"hash": hex}` (a valid id), as `dumps` writes it,
    formatted directly: the bulk of a batch of submissions, at a third of the encoder's cost."""
    id_text = str(request_id) if type(request_id) is int else _ENCODER.encode(request_id)
    return '{"jsonrpc":"2.0","id":' + id_text + ',"result":{"hash":"' + tx_hash_hex + '"}}'


def _is_valid_id(value: Any, max_chars: int) -> bool:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return True
    if isinstance(value, str):
        return len(value) <= max_chars
    return isinstance(value, float) and math.isfinite(value)


class RpcServer:
    """The RPC for one node. `await start()`, then `url`; `await close()` to stop."""

    def __init__(self, node: NodeServices, config: RpcConfig | None = None) -> None:
        self.node = node
        self.config = config or RpcConfig()
        self.limiter = RateLimiter(self.config.rate_per_s, self.config.rate_burst, self.config.rate_clients_max, self.config.clock)
        self.in_flight = 0
        self.websockets: set[WebSocketConnection] = set()
        self.app = web.Application(client_max_size=self.config.max_body_bytes)
        self.app.router.add_post("/", self.handle_http)
        self.app.router.add_route("*", "/", self.handle_not_post)
        self.app.router.add_get("/ws", self.handle_websocket)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("JSON-RPC listening on %s", self.url)

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        for conn in list(self.websockets):
            await conn.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # HTTP ---------------------------------------------------------------------------------------------
    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        client = request.remote or "unknown"
        if not self.limiter.allow(client):
            return self._http_error(429, rate_limited())
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._http_error(413, RpcError(ErrorCode.INVALID_REQUEST, f"request body exceeds {limit} bytes"))
        try:
            async with asyncio.timeout(self.config.body_read_timeout_s):  # no task per request, as wait_for would make
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._http_error(413, RpcError(ErrorCode.INVALID_REQUEST, f"request body exceeds {limit} bytes"))
        except asyncio.TimeoutError:
            return self._http_error(408, RpcError(ErrorCode.INVALID_REQUEST, "request body took too long to arrive"))
        try:
            answer = await self.process_payload(body, CallContext(self.node), client)
        except RpcError as exc:
            return self._http_error(429 if exc.code == ErrorCode.RATE_LIMITED else 200, exc)
        if answer is None:
            return web.Response(status=204)
        return web.Response(text=answer, content_type="application/json")

    async def handle_not_post(self, request: web.Request) -> web.StreamResponse:
        response = self._http_error(405, RpcError(ErrorCode.INVALID_REQUEST, "POST JSON-RPC 2.0 requests to / (or use the websocket at /ws)"))
        response.headers["Allow"] = "POST"
        return response

    @staticmethod
    def _http_error(status: int, error: RpcError) -> web.Response:
        return web.Response(text=error_response(None, error), status=status, content_type="application/json")

    # calls -------------------------------------------------------------------------------------------
    async def process_payload(self, body: bytes, ctx: CallContext, client: str) -> str | None:
        """The answer to one HTTP body or websocket message; None when it was only notifications.

        Raises RpcError when the payload as a whole fails (not JSON, a bad batch, over the rate):
        the answer is then that one error with id null."""
        payload = parse_json(body)
        if not isinstance(payload, list):
            return await self.process_call(payload, ctx)
        if not payload:
            raise RpcError(ErrorCode.INVALID_REQUEST, "empty batch")
        if len(payload) > self.config.max_batch:
            raise RpcError(ErrorCode.INVALID_REQUEST, f"a batch holds at most {self.config.max_batch} calls")
        if len(payload) > 1 and not self.limiter.allow(client, len(payload) - 1):
            raise rate_limited()
        if all(type(item) is dict and item.get("method") == "submit_tx" for item in payload):
            answers = await self._submit_batch(payload, ctx)
        else:
            answers = await asyncio.gather(*(self.process_call(item, ctx) for item in payload))
        present = [a for a in answers if a is not None]
        return "[" + ",".join(present) + "]" if present else None

    async def process_call(self, request: Any, ctx: CallContext) -> str | None:
        """One call of a payload: its response text, or None for a notification."""
        if not isinstance(request, dict):
            return error_response(None, RpcError(ErrorCode.INVALID_REQUEST, "a request is a JSON object"))
        request_id, is_notification = request.get("id"), "id" not in request
        if not _is_valid_id(request_id, self.config.max_id_chars):
            return _BAD_ID
        try:
            method, params = self._check_request(request)
            result = await self._run_call(ctx, method, params)
        except RpcError as exc:
            return None if is_notification else error_response(request_id, exc)
        return self._answer(request_id, is_notification, method, result)

    @staticmethod
    def _answer(request_id: Any, is_notification: bool, method: str, result: Any) -> str | None:
        if is_notification:
            return None
        if isinstance(result, RpcError):
            return error_response(request_id, result)
        try:
            return dumps({"jsonrpc": "2.0", "id": request_id, "result": result})
        except (TypeError, ValueError):
            log.exception("result of %s is not JSON", method)
            return error_response(request_id, RpcError(ErrorCode.INTERNAL_ERROR, "internal error"))

    async def _submit_batch(self, payload: list[dict[str, Any]], ctx: CallContext) -> list[str | None]:
        """A batch of submit_tx calls only (what wallets and load generators send): the answers
        `process_call` would give each, from one node call for all, so a batch costs one check
        of its signatures and one admission instead of a task per call."""
        answers: list[str | None] = [None] * len(payload)
        raws: list[bytes] = []
        calls: list[tuple[int, Any, bool]] = []  # (position, id, notification) of each raw
        for position, request in enumerate(payload):
            request_id, is_notification = request.get("id"), "id" not in request
            if not _is_valid_id(request_id, self.config.max_id_chars):
                answers[position] = _BAD_ID
                continue
            try:
                _, params = self._check_request(request)
                self._refuse_if_busy(len(raws))  # before params, as `_run_call`
                raw = METHODS["submit_tx"].parse_params(params)["tx"]
            except RpcError as exc:
                answers[position] = None if is_notification else error_response(request_id, exc)
                continue
            raws.append(raw)
            calls.append((position, request_id, is_notification))
        if not raws:
            return answers
        self.in_flight += len(raws)
        try:
            results = await call_submit_txs(ctx, raws)
        except Exception:
            log.exception("internal error in submit_tx")
            results = [RpcError(ErrorCode.INTERNAL_ERROR, "internal error")] * len(raws)
        finally:
            self.in_flight -= len(raws)
        for (position, request_id, is_notification), result in zip(calls, results, strict=True):
            if type(result) is dict and not is_notification:  # admitted: {"hash": hex}, most of a batch
                answers[position] = submitted_answer(request_id, result["hash"])
            else:
                answers[position] = self._answer(request_id, is_notification, "submit_tx", result)
        return answers

    @staticmethod
    def _check_request(request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if request.get("jsonrpc") != "2.0":
            raise RpcError(ErrorCode.INVALID_REQUEST, 'jsonrpc must be "2.0"')
        method = request.get("method")
        if not isinstance(method, str):
            raise RpcError(ErrorCode.INVALID_REQUEST, "method must be a string")
        params = request.get("params", {})
        if params == []:
            params = {}
        if isinstance(params, list):
            raise RpcError(ErrorCode.INVALID_PARAMS, "invalid params: pass params by name, as an object")
        if not isinstance(params, dict):
            raise RpcError(ErrorCode.INVALID_REQUEST, "params must be an object")
        return method, params

    def _refuse_if_busy(self, accepted: int = 0) -> None:
        """Raise UNAVAILABLE if one more call (after `accepted` already counted for a batch) would
        pass max_in_flight."""
        if self.in_flight + accepted >= self.config.max_in_flight:
            raise RpcError(ErrorCode.UNAVAILABLE, "server busy; try again shortly")

    async def _run_call(self, ctx: CallContext, method: str, params: dict[str, Any]) -> Any:
        self._refuse_if_busy()
        self.in_flight += 1
        try:
            return await call_method(ctx, method, params)
        except RpcError:
            raise
        except Exception:
            log.exception("internal error in %s", method[:64])
            raise RpcError(ErrorCode.INTERNAL_ERROR, "internal error") from None
        finally:
            self.in_flight -= 1

    # websocket ---------------------------------------------------------------------------------------
    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        client = request.remote or "unknown"
        if len(self.websockets) >= self.config.max_websockets:
            return self._http_error(503, RpcError(ErrorCode.UNAVAILABLE, "too many websocket connections"))
        if not self.limiter.allow(client):
            return self._http_error(429, rate_limited())
        ws = web.WebSocketResponse(
            max_msg_size=self.config.max_ws_message_bytes,
            heartbeat=self.config.ws_heartbeat_s,
            timeout=2.0,  # for the closing handshake
            compress=False,  # no inflating of client data
        )
        await ws.prepare(request)
        conn = WebSocketConnection(self, ws, client)
        self.websockets.add(conn)
        try:
            await conn.run()
        finally:
            self.websockets.discard(conn)
            await conn.close()
        return ws


class WebSocketConnection:
    """One websocket client: its calls, its subscriptions, and one writer with a bounded queue."""

    def __init__(self, server: RpcServer, ws: web.WebSocketResponse, client: str) -> None:
        self.server = server
        self.ws = ws
        self.client = client
        config = server.config
        self.outbox: asyncio.Queue[str] = asyncio.Queue(config.ws_send_queue_max)
        self.calls: set[asyncio.Task[None]] = set()
        self.subscriptions: dict[str, asyncio.Task[None]] = {}
        self._ids = itertools.count(1)
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[bool] | None = None
        self._closed = False

    async def run(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())
        ctx = CallContext(self.server.node, self)
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT:
                self._accept(msg.data.encode("utf-8", errors="surrogatepass"), ctx)
            elif msg.type == WSMsgType.BINARY:
                self.send(error_response(None, RpcError(ErrorCode.PARSE_ERROR, "parse error: send JSON in text frames")))
            else:  # ERROR; CLOSE and CLOSED end the iteration
                break
            if self._closed:
                break

    def _accept(self, data: bytes, ctx: CallContext) -> None:
        if not self.server.limiter.allow(self.client):
            self.send(error_response(None, rate_limited()))
            return
        if len(self.calls) >= self.server.config.max_pending_per_websocket:
            self.send(error_response(None, RpcError(ErrorCode.UNAVAILABLE, "too many calls in progress on this connection")))
            return
        task = asyncio.create_task(self._answer(data, ctx))
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def _answer(self, data: bytes, ctx: CallContext) -> None:
        try:
            answer = await self.server.process_payload(data, ctx, self.client)
        except RpcError as exc:
            answer = error_response(None, exc)
        if answer is not None:
            self.send(answer)

    def send(self, text: str) -> None:
        """Queue a message; a client too slow to take them is disconnected rather than waited for."""
        if self._closed:
            return
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.info("closing websocket of %s: it does not read its messages", self.client)
            self._closed = True
            self._closing = asyncio.create_task(self.ws.close(code=1008, message=b"too slow"))

    async def _write_loop(self) -> None:
        while True:
            text = await self.outbox.get()
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    # Subscriptions (rpc_methods.Subscriptions) ----------------------------------------------------------
    def _new_subscription(self) -> str:
        if len(self.subscriptions) >= self.server.config.max_subscriptions_per_websocket:
            raise RpcError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"a connection holds at most {self.server.config.max_subscriptions_per_websocket} subscriptions",
            )
        return f"s{next(self._ids)}"

    def add_block_subscription(self) -> str:
        sub_id = self._new_subscription()
        queue = self.server.node.subscribe_blocks()
        self._start(sub_id, self._pump_blocks(sub_id, queue))
        return sub_id

    def add_tx_subscription(self, tx_hash: bytes, timeout_s: float) -> str:
        sub_id = self._new_subscription()
        self._start(sub_id, self._await_tx(sub_id, tx_hash, timeout_s))
        return sub_id

    def remove_subscription(self, subscription: str) -> bool:
        task = self.subscriptions.pop(subscription, None)
        if task is None:
            return False
        task.cancel()
        return True

    def _start(self, sub_id: str, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.subscriptions[sub_id] = task

    def _notify(self, sub_id: str, event: str, *, result: Any = None, error: RpcError | None = None) -> None:
        params: dict[str, Any] = {"subscription": sub_id, "event": event}
        if error is None:
            params["result"] = result
        else:
            params["error"] = error.to_dict()
        self.send(dumps({"jsonrpc": "2.0", "method": "subscription", "params": params}))

    async def _pump_blocks(self, sub_id: str, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        try:
            while True:
                summary = await queue.get()
                if summary is None:
                    self.subscriptions.pop(sub_id, None)
                    self._notify(sub_id, "new_block", error=RpcError(ErrorCode.UNAVAILABLE, "subscriber fell behind; subscribe again"))
                    return
                self._notify(sub_id, "new_block", result=summary)
        finally:
            self.server.node.unsubscribe_blocks(queue)

    async def _await_tx(self, sub_id: str, tx_hash: bytes, timeout_s: float) -> None:
        try:
            result: TxResult | None = await self.server.node.wait_for_tx(tx_hash, timeout_s)
        except Exception:
            log.exception("wait_for_tx failed")
            result = None
        self.subscriptions.pop(sub_id, None)
        if result is None:
            error = RpcError(ErrorCode.NOT_COMMITTED, f"not committed within {timeout_s:g} s", {"hash": tx_hash.hex()})
            self._notify(sub_id, "tx", error=error)
        else:
            self._notify(sub_id, "tx", result=tx_result_to_json(result))

    async def close(self) -> None:
        self._closed = True
        tasks = [*self.subscriptions.values(), *self.calls]
        if self._writer is not None:
            tasks.append(self._writer)
        self.subscriptions.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self.ws.closed:
            await self.ws.close()

"""JSON-RPC 2.0 framing, batches, limits and the websocket, against a real server on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.rpc_methods import ErrorCode
from consensus.rpc_server import RateLimiter, RpcConfig, RpcServer, submitted_answer
from ledger.crypto import sha256
from tests.ledger.helpers import key, transfer_tx
from tests.rpc.conftest import COIN, rpc_genesis
from tests.rpc.fake_node import ServedNode

STATUS = {"jsonrpc": "2.0", "id": 1, "method": "status"}


def post_json(served: ServedNode, payload: Any) -> tuple[int, Any]:
    return served.post(json.dumps(payload).encode())


def error_code(answer: Any) -> int:
    assert answer["jsonrpc"] == "2.0" and "result" not in answer, answer
    return answer["error"]["code"]


# framing ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", ErrorCode.PARSE_ERROR),
        (b"\xff\xfe", ErrorCode.PARSE_ERROR),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "status", "params": {"x": NaN}}', ErrorCode.PARSE_ERROR),
        (b"[" * 100_000 + b"]" * 100_000, ErrorCode.PARSE_ERROR),
        (b"1" * 5000, ErrorCode.PARSE_ERROR),
        (b"[]", ErrorCode.INVALID_REQUEST),
        (b"42", ErrorCode.INVALID_REQUEST),
        (b'{"id": 1, "method": "status"}', ErrorCode.INVALID_REQUEST),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "status"}', ErrorCode.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 7}', ErrorCode.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "status", "params": "x"}', ErrorCode.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "status"}', ErrorCode.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": true, "method": "status"}', ErrorCode.INVALID_REQUEST),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "account", "params": ["00"]}', ErrorCode.INVALID_PARAMS),
    ],
)
def test_malformed_requests_get_standard_errors(served: ServedNode, body: bytes, code: int) -> None:
    status, answer = served.post(body)
    assert status == 200
    assert error_code(answer) == code


def test_ids_are_echoed(served: ServedNode) -> None:
    for request_id in ("abc", 7, 2**70, 1.5, None):
        _, answer = post_json(served, {**STATUS, "id": request_id})
        assert answer["id"] == request_id and answer["result"]["height"] == 0


def test_notifications_get_no_answer_but_run(served: ServedNode) -> None:
    raw = transfer_tx(1, 2, COIN, 0)
    status, answer = post_json(served, {"jsonrpc": "2.0", "method": "submit_tx", "params": {"tx": raw.hex()}})
    assert (status, answer) == (204, None)
    assert served.run(lambda: served.node.ledger.head.height) == 1


def test_batch_answers_each_call_in_order_and_skips_notifications(served: ServedNode) -> None:
    batch = [
        STATUS,
        {"jsonrpc": "2.0", "id": "n", "method": "nope"},
        {"jsonrpc": "2.0", "method": "status"},
        5,
        {"jsonrpc": "2.0", "id": 9, "method": "account", "params": {"address": key(1).address.hex()}},
    ]
    status, answers = post_json(served, batch)
    assert status == 200 and len(answers) == 4
    assert answers[0]["id"] == 1 and "result" in answers[0]
    assert answers[1]["id"] == "n" and error_code(answers[1]) == ErrorCode.METHOD_NOT_FOUND
    assert answers[2]["id"] is None and error_code(answers[2]) == ErrorCode.INVALID_REQUEST
    assert answers[3]["id"] == 9 and answers[3]["result"]["balance"] == 50 * COIN
    status, answer = post_json(served, [{"jsonrpc": "2.0", "method": "status"}] * 3)
    assert (status, answer) == (204, None)


def _submit_call(kind: str, position: int) -> dict[str, Any]:
    """One submit_tx call of a batch, of the given kind (the nonce follows the position, so some
    are next in line, some ahead, some repeated)."""
    call: dict[str, Any] = {"jsonrpc": "2.0", "id": position, "method": "submit_tx"}
    nonce = position % 3
    if kind == "ok":
        call["params"] = {"tx": transfer_tx(1, 2, COIN, nonce).hex()}
    elif kind == "notification":
        del call["id"]
        call["params"] = {"tx": transfer_tx(1, 2, COIN, nonce).hex()}
    elif kind == "overdraft":
        call["params"] = {"tx": transfer_tx(2, 1, 10**6 * COIN, 0).hex()}
    elif kind == "bad_signature":
        raw = bytearray(transfer_tx(1, 2, COIN, nonce))
        raw[-1] ^= 1
        call["params"] = {"tx": bytes(raw).hex()}
    elif kind == "not_hex":
        call["params"] = {"tx": "zz"}
    elif kind == "unknown_param":
        call["params"] = {"tx": transfer_tx(1, 2, COIN, nonce).hex(), "fee": 1}
    elif kind == "bad_id":
        call["id"] = {"a": 1}
        call["params"] = {"tx": transfer_tx(1, 2, COIN, nonce).hex()}
    elif kind == "bad_version":
        call["jsonrpc"] = "1.0"
    return call


@given(request_id=st.one_of(st.none(), st.integers(), st.text(max_size=40), st.floats(allow_nan=False, allow_infinity=False)))
def test_an_admitted_submissions_answer_is_what_the_encoder_writes(request_id: object) -> None:
    """The batch path formats an admitted submit_tx's answer itself; it is the encoder's text."""
    tx_hash = sha256(str(request_id).encode()).hex()
    assert submitted_answer(request_id, tx_hash) == RpcServer._answer(request_id, False, "submit_tx", {"hash": tx_hash})
    assert json.loads(submitted_answer(request_id, tx_hash)) == {"jsonrpc": "2.0", "id": request_id, "result": {"hash": tx_hash}}


CALL_KINDS = ("ok", "notification", "overdraft", "bad_signature", "not_hex", "unknown_param", "bad_id", "bad_version")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(CALL_KINDS), min_size=2, max_size=12))
def test_a_batch_of_submit_tx_answers_as_its_calls_one_by_one(kinds: list[str]) -> None:
    """A batch of submit_tx calls only takes the server's batch path (one node call for all); its
    answers, and the transactions admitted, are those of the same calls sent one at a time."""
    batch = [_submit_call(kind, position) for position, kind in enumerate(kinds)]
    with ServedNode(rpc_genesis(), commit="manual") as together, ServedNode(rpc_genesis(), commit="manual") as alone:
        status, answers = post_json(together, batch)
        one_by_one = [post_json(alone, call) for call in batch]
        expected = [answer for _, answer in one_by_one if answer is not None]
        assert status == (200 if expected else 204)
        assert (answers or []) == expected
        assert together.run(lambda: list(together.node.pending)) == alone.run(lambda: list(alone.node.pending))


def test_batch_size_is_bounded(served: ServedNode) -> None:
    _, answer = post_json(served, [STATUS] * (served.config.max_batch + 1))
    assert answer["id"] is None and error_code(answer) == ErrorCode.INVALID_REQUEST


def test_oversized_body_is_refused(served: ServedNode) -> None:
    status, answer = served.post(b" " * (served.config.max_body_bytes + 1))
    assert status == 413 and error_code(answer) == ErrorCode.INVALID_REQUEST
    assert post_json(served, STATUS)[0] == 200


def test_chunked_oversized_body_is_refused(served: ServedNode) -> None:
    limit = served.config.max_body_bytes
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=30) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * 65536
        try:
            for _ in range(limit // len(chunk) + 2):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading once past the limit
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413")


def test_slow_body_times_out() -> None:
    config = RpcConfig(port=0, rate_per_s=1e6, rate_burst=1e6, body_read_timeout_s=0.2)
    with ServedNode(rpc_genesis(), config=config) as served:
        with socket.create_connection(("127.0.0.1", served.server.port), timeout=30) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 408")
        assert post_json(served, STATUS)[0] == 200


def test_only_post_on_root(served: ServedNode) -> None:
    status, answer = served.post(b"", method="GET")
    assert status == 405 and error_code(answer) == ErrorCode.INVALID_REQUEST


# limits -------------------------------------------------------------------------------------------
def test_rate_limit_per_client() -> None:
    config = RpcConfig(port=0, rate_per_s=1e-9, rate_burst=3, max_batch=2)
    with ServedNode(rpc_genesis(), config=config) as served:
        assert [post_json(served, STATUS)[0] for _ in range(3)] == [200, 200, 200]
        status, answer = post_json(served, STATUS)
        assert status == 429 and error_code(answer) == ErrorCode.RATE_LIMITED


def test_rate_limiter_refills_and_bounds_its_table() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2.0, burst=4.0, clients_max=3, clock=lambda: now[0])
    assert all(limiter.allow("a") for _ in range(4)) and not limiter.allow("a")
    now[0] += 1.0
    assert limiter.allow("a", 2) and not limiter.allow("a")
    assert not limiter.allow("b", 5)
    for client in ("c", "d", "e", "f"):
        limiter.allow(client)
    assert len(limiter) == 3


def test_in_flight_bound_answers_busy() -> None:
    config = RpcConfig(port=0, rate_per_s=1e6, rate_burst=1e6, max_in_flight=1)
    with ServedNode(rpc_genesis(), config=config, commit="manual") as served:
        raw = transfer_tx(1, 2, COIN, 0)

        async def scenario() -> list[Any]:
            async with aiohttp.ClientSession() as session, session.ws_connect(served.url + "/ws") as ws:
                await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "submit_tx_commit", "params": {"tx": raw.hex(), "timeout_ms": 60_000}})
                await ws.send_json({"jsonrpc": "2.0", "id": 2, "method": "status"})
                busy = await ws.receive_json(timeout=10)
                served.node.commit_pending()
                committed = await ws.receive_json(timeout=10)
                return [busy, committed]

        busy, committed = served.run_async(scenario())
        assert busy["id"] == 2 and error_code(busy) == ErrorCode.UNAVAILABLE
        assert committed["id"] == 1 and committed["result"]["hash"] == sha256(raw).hex()


def test_in_flight_bound_holds_for_a_batch_of_submissions() -> None:
    """The batch path counts each submit_tx call against max_in_flight, as if each ran alone: the
    calls past the bound are answered busy and not admitted."""
    config = RpcConfig(port=0, rate_per_s=1e6, rate_burst=1e6, max_in_flight=2)
    with ServedNode(rpc_genesis(), config=config, commit="manual") as served:
        raws = [transfer_tx(1, 2, COIN, nonce) for nonce in range(4)]
        batch = [{"jsonrpc": "2.0", "id": i, "method": "submit_tx", "params": {"tx": raw.hex()}} for i, raw in enumerate(raws)]
        status, answers = post_json(served, batch)
        assert status == 200
        assert [a["result"]["hash"] for a in answers[:2]] == [sha256(raw).hex() for raw in raws[:2]]
        assert [error_code(a) for a in answers[2:]] == [ErrorCode.UNAVAILABLE] * 2
        assert served.run(lambda: list(served.node.pending)) == raws[:2]
        assert served.server.in_flight == 0
        # over the bound and malformed: busy, as the per-call path answers (it checks the bound first)
        served.server.in_flight = config.max_in_flight
        try:
            _, answers = post_json(served, [{**batch[0], "params": {"tx": "zz"}}, {**batch[1], "params": {"tx": "zz"}}])
        finally:
            served.server.in_flight = 0
        assert [error_code(a) for a in answers] == [ErrorCode.UNAVAILABLE] * 2


# websocket ------------------------------------------------------------------------------------------
async def ws_call(ws: aiohttp.ClientWebSocketResponse, request_id: int, method: str, **params: Any) -> Any:
    await ws.send_json({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    answer = await ws.receive_json(timeout=10)
    assert answer["id"] == request_id, answer
    return answer


def test_websocket_serves_calls_and_block_subscriptions(served: ServedNode) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url + "/ws") as ws:
            assert (await ws_call(ws, 1, "status"))["result"]["height"] == 0
            sub = (await ws_call(ws, 2, "subscribe", event="new_block"))["result"]["subscription"]
            for _ in range(3):
                served.node.commit_block()
            for height in (1, 2, 3):
                note = await ws.receive_json(timeout=10)
                assert note["method"] == "subscription" and "id" not in note
                assert note["params"]["subscription"] == sub and note["params"]["event"] == "new_block"
                assert note["params"]["result"]["header"]["height"] == height
            assert (await ws_call(ws, 3, "unsubscribe", subscription=sub))["result"] is True
            assert (await ws_call(ws, 4, "unsubscribe", subscription=sub))["result"] is False
            served.node.commit_block()
            assert (await ws_call(ws, 5, "status"))["result"]["height"] == 4  # no notification came first
            assert len(served.node.feed) == 0

    served.run_async(scenario())


def test_websocket_tx_subscription_reports_the_commit() -> None:
    with ServedNode(rpc_genesis(), commit="manual") as served:
        raw = transfer_tx(1, 2, COIN, 0)
        tx_hash = sha256(raw).hex()

        async def scenario() -> tuple[Any, Any]:
            async with aiohttp.ClientSession() as session, session.ws_connect(served.url + "/ws") as ws:
                sub = (await ws_call(ws, 1, "subscribe", event="tx", hash=tx_hash))["result"]["subscription"]
                await ws_call(ws, 2, "submit_tx", tx=raw.hex())
                served.node.commit_pending()
                committed = await ws.receive_json(timeout=10)
                timeout_sub = (await ws_call(ws, 3, "subscribe", event="tx", hash="11" * 32, timeout_ms=20))["result"]["subscription"]
                timed_out = await ws.receive_json(timeout=10)
                return (sub, committed), (timeout_sub, timed_out)

        (sub, committed), (timeout_sub, timed_out) = served.run_async(scenario())
        assert committed["params"]["subscription"] == sub and committed["params"]["event"] == "tx"
        assert committed["params"]["result"]["hash"] == tx_hash and committed["params"]["result"]["height"] == 1
        assert timed_out["params"]["subscription"] == timeout_sub
        assert timed_out["params"]["error"]["code"] == ErrorCode.NOT_COMMITTED


def test_websocket_subscriptions_are_capped(served: ServedNode) -> None:
    cap = served.config.max_subscriptions_per_websocket

    async def scenario() -> Any:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url + "/ws") as ws:
            for i in range(cap):
                assert "result" in await ws_call(ws, i, "subscribe", event="tx", hash="22" * 32)
            return await ws_call(ws, cap, "subscribe", event="new_block")

    assert error_code(served.run_async(scenario())) == ErrorCode.TOO_MANY_SUBSCRIPTIONS


def test_websocket_subscriber_that_falls_behind_is_told(served: ServedNode) -> None:
    async def scenario() -> list[Any]:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url + "/ws") as ws:
            await ws_call(ws, 1, "subscribe", event="new_block")
            queue = next(iter(served.node.feed._queues))
            for _ in range(queue.maxsize + 1):  # published faster than the pump can drain: no await between
                served.node.commit_block()
            notes = []
            while True:
                note = await ws.receive_json(timeout=10)
                notes.append(note)
                if "error" in note["params"]:
                    return notes

    notes = served.run_async(scenario())
    assert notes[-1]["params"]["error"]["code"] == ErrorCode.UNAVAILABLE
    assert len(served.node.feed) == 0


def test_websocket_bad_frames(served: ServedNode) -> None:
    async def scenario() -> tuple[Any, Any, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(served.url + "/ws") as ws:
                await ws.send_bytes(b"\x00\x01")
                binary = await ws.receive_json(timeout=10)
                await ws.send_str("{nope")
                garbage = await ws.receive_json(timeout=10)
            async with session.ws_connect(served.url + "/ws") as ws:
                await ws.send_str(" " * (served.config.max_ws_message_bytes + 1))
                closed = await ws.receive(timeout=10)
            return binary, garbage, closed

    binary, garbage, closed = served.run_async(scenario())
    assert error_code(binary) == ErrorCode.PARSE_ERROR and error_code(garbage) == ErrorCode.PARSE_ERROR
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert post_json(served, STATUS)[0] == 200


def test_websocket_connections_are_capped() -> None:
    config = RpcConfig(port=0, rate_per_s=1e6, rate_burst=1e6, max_websockets=2)
    with ServedNode(rpc_genesis(), config=config) as served:

        async def scenario() -> int:
            async with aiohttp.ClientSession() as session:
                open_ws = [await session.ws_connect(served.url + "/ws") for _ in range(2)]
                for ws in open_ws:
                    await ws_call(ws, 1, "status")  # both handlers are running
                try:
                    await session.ws_connect(served.url + "/ws")
                except aiohttp.WSServerHandshakeError as exc:
                    return exc.status
                finally:
                    for ws in open_ws:
                        await ws.close()
                return 101

        assert served.run_async(scenario()) == 503


def test_close_with_open_websockets_is_prompt() -> None:
    served = ServedNode(rpc_genesis())

    async def open_and_subscribe() -> aiohttp.ClientSession:
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(served.url + "/ws")
        await ws_call(ws, 1, "subscribe", event="new_block")
        return session

    session = served.run_async(open_and_subscribe())
    served.run_async(asyncio.wait_for(served.server.close(), 5))
    served.run_async(session.close())
    served.loop.call_soon_threadsafe(served.loop.stop)
    served.thread.join(10)
    served.loop.close()
    assert len(served.node.feed) == 0


def test_a_websocket_that_does_not_read_is_closed_not_waited_for() -> None:
    from consensus.rpc_server import RpcServer, WebSocketConnection
    from tests.rpc.fake_node import FakeNode

    class StubSocket:
        closed_with: int | None = None

        async def close(self, code: int = 1000, message: bytes = b"") -> bool:
            self.closed_with = code
            return True

    async def scenario() -> tuple[StubSocket, WebSocketConnection]:
        server = RpcServer(FakeNode(rpc_genesis()), RpcConfig(port=0, ws_send_queue_max=2))
        ws = StubSocket()
        conn = WebSocketConnection(server, ws, "client")  # type: ignore[arg-type]
        for i in range(3):  # no writer runs: the third message finds the queue full
            conn.send(f"message {i}")
        await conn._closing  # type: ignore[misc]
        conn.send("after")
        return ws, conn

    ws, conn = asyncio.run(scenario())
    assert ws.closed_with == 1008 and conn.outbox.qsize() == 2

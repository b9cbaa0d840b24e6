"""Random and malformed input at the RPC: every answer is a well-formed JSON-RPC answer, and after
each one the node still answers and still commits a valid transaction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.rpc_methods import METHODS
from ledger.crypto import sha256
from tests.ledger.helpers import key, transfer_tx
from tests.rpc.conftest import rpc_genesis
from tests.rpc.fake_node import ServedNode

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def served() -> Iterator[ServedNode]:
    from consensus.rpc_server import RpcConfig

    config = RpcConfig(port=0, rate_per_s=1e6, rate_burst=1e6, max_body_bytes=MAX_BODY)
    with ServedNode(rpc_genesis(), config=config) as s:
        yield s


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
hexes = st.binary(max_size=80).map(bytes.hex) | st.text("0123456789abcdefABCDEFx", max_size=130)
param_names = sorted({p.name for m in METHODS.values() for p in m.params})
param_values = json_values | hexes | st.integers(min_value=-2, max_value=2**64) | st.sampled_from([key(1).address.hex(), "0x" + "00" * 32])
requests = st.dictionaries(
    st.sampled_from(["jsonrpc", "id", "method", "params", "extra"]),
    st.sampled_from(["2.0"]) | st.sampled_from(sorted(METHODS)) | json_values,
    max_size=5,
) | st.fixed_dictionaries(
    {
        "jsonrpc": st.sampled_from(["2.0", "2.0", "1.0"]),
        "id": scalars,
        "method": st.sampled_from([*sorted(METHODS), "nope", "rpc.nope", ""]),
        "params": st.dictionaries(st.sampled_from(param_names) | st.text(max_size=8), param_values, max_size=4) | json_values,
    }
)
payloads = requests | st.lists(requests, min_size=1, max_size=8) | json_values
special_bodies = st.sampled_from(
    [
        b"",
        b"[" * 50_000,
        b"{" * 50_000,
        b'{"a":' * 10_000,
        b"9" * 5_000,
        b"-1e999999",
        b'"\\ud800"',
        b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"x":Infinity}}',
        b" " * (MAX_BODY + 1),
        json.dumps([{"jsonrpc": "2.0", "id": i, "method": "status"} for i in range(500)]).encode(),
    ]
)
bodies = payloads.map(lambda p: json.dumps(p).encode()) | st.binary(max_size=200) | special_bodies
mutated = st.tuples(payloads.map(lambda p: json.dumps(p).encode()), st.integers(0, 200), st.binary(min_size=1, max_size=3)).map(
    lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
)


def check_response_object(answer: Any) -> None:
    assert isinstance(answer, dict) and answer.get("jsonrpc") == "2.0", answer
    assert "id" in answer
    assert ("result" in answer) != ("error" in answer), answer
    if "error" in answer:
        error = answer["error"]
        assert isinstance(error["code"], int) and not isinstance(error["code"], bool)
        assert isinstance(error["message"], str) and error["message"]


def check_answer(status: int, answer: Any) -> None:
    assert status in (200, 204, 413), status
    if status == 204:
        assert answer is None
    elif isinstance(answer, list):
        assert answer, "an empty batch answer is sent as no content"
        for item in answer:
            check_response_object(item)
    else:
        check_response_object(answer)


def check_still_commits(served: ServedNode) -> None:
    status, answer = served.post(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "account", "params": {"address": key(1).address.hex()}}).encode())
    assert status == 200
    nonce = answer["result"]["nonce"]
    raw = transfer_tx(1, 2, 1, nonce)
    status, answer = served.post(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "submit_tx_commit", "params": {"tx": raw.hex()}}).encode())
    assert status == 200 and answer["result"]["hash"] == sha256(raw).hex(), answer


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies | mutated)
def test_http_answers_anything_with_json_rpc_and_keeps_committing(served: ServedNode, body: bytes) -> None:
    status, answer = served.post(body)
    check_answer(status, answer)
    check_still_commits(served)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(messages=st.lists(payloads.map(json.dumps) | st.text(max_size=100), min_size=1, max_size=5))
def test_websocket_answers_anything_and_stays_open(served: ServedNode, messages: list[str]) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(served.url + "/ws") as ws:
            for text in messages:
                await ws.send_str(text)
            await ws.send_json({"jsonrpc": "2.0", "id": "probe", "method": "status"})
            while True:  # bounded: each frame arrives within the timeout or the test fails
                msg = await ws.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                answer = json.loads(msg.data)
                if isinstance(answer, list):
                    for item in answer:
                        check_response_object(item)
                elif answer.get("method") == "subscription":
                    continue
                else:
                    check_response_object(answer)
                    if answer["id"] == "probe" and "result" in answer:
                        return

    served.run_async(scenario())
    check_still_commits(served)

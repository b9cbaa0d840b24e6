"""The JSON-RPC method table: each method's named parameters, how they are checked, and its handler.

Transport lives in consensus/rpc_server.py; this module knows nothing of HTTP. Every handler reads
through `NodeServices` only. specs/rpc.md is the prose reference and specs/api.json the OpenRPC
document `rpc.discover` serves; a test keeps both in step with `METHODS`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from consensus.node_services import MempoolFull, NodeServices, TooManySubscribers, TxIndexDisabled, TxResult
from ledger import HistoryUnavailable, Rejected
from ledger.constants import (
    MAX_AMOUNT,
    MAX_MEMO_BYTES,
    MAX_SIGNATURES_PER_TX,
    MAX_TX_BYTES,
    MAX_TXS_PER_BLOCK,
    RATE_SCALE,
    UNITS_PER_COIN,
)
from ledger.crypto import address_from_text
from ledger.housing import count_vacant, count_waiting, get_housing_queue, get_right_info, get_unit_info
from ledger.merkle import Proof
from ledger.monetary import process_periods
from ledger.nodes import get_member_info, get_node_info
from ledger.queries import get_account_info, get_supply
from ledger.quotas import get_quota_info, get_resource, get_rules
from ledger.records import account_key
from ledger.state import State, decode_record
from ledger.tx import ID_MAX_CHARS, decode_tx, is_valid_id

OPENRPC_PATH = Path(__file__).resolve().parent.parent / "specs" / "api.json"

PROJECT_PERIODS_MAX = 10_000
"""`account` projects a balance at most this many periods ahead (the work is linear in it)."""
COMMIT_TIMEOUT_MS_DEFAULT = 10_000
COMMIT_TIMEOUT_MS_MAX = 60_000
ACCOUNT_TXS_LIMIT_MAX = 100
HOUSING_QUEUE_LIMIT_MAX = 1000
HEIGHT_MAX = 2**63 - 1


class ErrorCode(enum.IntEnum):
    """JSON-RPC error codes. Ledger rejections use their ledger.Code number (1001 and up) instead,
    and a full mempool its own number (consensus.mempool.MempoolFull.number, 2001)."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    RATE_LIMITED = -32001
    NOT_COMMITTED = -32002
    TOO_MANY_SUBSCRIPTIONS = -32003
    UNAVAILABLE = -32004
    NO_TX_INDEX = -32005


class RpcError(Exception):
    """An error answer: a JSON-RPC error object with a stable code."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(message: str) -> RpcError:
    return RpcError(ErrorCode.INVALID_PARAMS, f"invalid params: {message}")


class Subscriptions(Protocol):
    """The websocket connection a call came in on; the server implements it."""

    def add_block_subscription(self) -> str: ...

    def add_tx_subscription(self, tx_hash: bytes, timeout_s: float) -> str: ...

    def remove_subscription(self, subscription: str) -> bool: ...


@dataclass(frozen=True)
class CallContext:
    node: NodeServices
    subscriptions: Subscriptions | None = None  # None over HTTP


# parameter checkers: each returns the parsed value or raises RpcError -------------------------------
Parser = Callable[[str, Any], Any]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_address(name: str, value: Any) -> bytes:
    if not isinstance(value, str) or len(value) > 70:
        raise invalid_params(f"{name} must be an address: 64 hex characters")
    try:
        return address_from_text(value)
    except ValueError as exc:
        raise invalid_params(f"{name}: {exc}") from None


def parse_hash(name: str, value: Any) -> bytes:
    data = parse_hex(name, value)
    if len(data) != 32:
        raise invalid_params(f"{name} must be a 32-byte hash: 64 hex characters")
    return data


def parse_hex(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise invalid_params(f"{name} must be a hex string")
    text = value[2:] if value[:2] in ("0x", "0X") else value
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise invalid_params(f"{name} must be an even number of hex characters") from None


def parse_id(name: str, value: Any) -> str:
    if not is_valid_id(value):
        raise invalid_params(f"{name} must be an id: 1 to {ID_MAX_CHARS} characters of [a-z0-9._-]")
    return str(value)


def int_between(low: int, high: int) -> Parser:
    def parse(name: str, value: Any) -> int:
        if not is_int(value) or not low <= value <= high:
            raise invalid_params(f"{name} must be an integer from {low} to {high}")
        return value

    return parse


parse_height = int_between(0, HEIGHT_MAX)


def one_of(*choices: str) -> Parser:
    def parse(name: str, value: Any) -> str:
        if value not in choices:
            raise invalid_params(f"{name} must be one of {', '.join(choices)}")
        return value

    return parse


def parse_subscription_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 32:
        raise invalid_params(f"{name} must be a subscription id")
    return value


@dataclass(frozen=True)
class Param:
    name: str
    parse: Parser
    required: bool = True


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    name: str
    handler: Handler
    params: tuple[Param, ...] = ()
    websocket_only: bool = False
    timeout_s: float = 10.0
    """Bound on the handler's run time; the server answers INTERNAL_ERROR past it."""

    def parse_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        known = {p.name for p in self.params}
        unknown = sorted(k for k in raw if k not in known)
        if unknown:
            shown = ", ".join(repr(k[:40]) for k in unknown[:5])
            raise invalid_params(f"unknown parameter(s) {shown}; {self.name} takes {sorted(known) or 'none'}")
        parsed: dict[str, Any] = {}
        for p in self.params:
            if p.name in raw and raw[p.name] is not None:
                parsed[p.name] = p.parse(p.name, raw[p.name])
            elif p.required:
                raise invalid_params(f"missing parameter {p.name!r}")
        return parsed


# JSON-ready conversions -----------------------------------------------------------------------------
def to_json_ready(value: Any) -> Any:
    """Bytes to hex, tuples to lists, dataclasses to dicts, recursively."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): to_json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_ready(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_ready(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def proof_from_json(obj: Any) -> Proof:
    """The Proof of a `proof` answer's "proof" member (its hashes in hex). Raises ValueError."""

    def unhex(value: Any) -> Any:
        if isinstance(value, str):
            return bytes.fromhex(value)
        if isinstance(value, list):
            return [unhex(v) for v in value]
        if isinstance(value, dict):
            return {k: unhex(v) for k, v in value.items()}
        raise ValueError("a proof holds only hex hashes")

    return Proof.from_wire(unhex(obj))


def tx_result_to_json(result: TxResult) -> dict[str, Any]:
    tx = decode_tx(result.raw)
    return {
        "hash": result.hash.hex(),
        "height": result.height,
        "index": result.index,
        "time_ms": result.time_ms,
        "tx": result.raw.hex(),
        "body": to_json_ready(tx.body),
        "signers": [pk.hex() for pk, _ in tx.signatures],
        "result": dict(result.result),
    }


# queries the ledger does not offer yet --------------------------------------------------------------
def get_account_projection(view: State, address: bytes, periods: int) -> dict[str, Any]:
    """The account as it would stand `periods` periods after the head if no transaction happened:
    the ledger's own period openings and settlement, run on a throwaway overlay."""
    head = view.get_head()
    target = head.period + periods
    process_periods(view, target)
    view.set_head(dataclasses.replace(head, period=target))
    info = get_account_info(view, address)
    return {
        "periods": periods,
        "period": target,
        "balance": info["balance"],
        "pending_demurrage": info["pending_demurrage"],
        "pending_ubi": info["pending_ubi"],
    }


# handlers -------------------------------------------------------------------------------------------
async def handle_status(ctx: CallContext) -> dict[str, Any]:
    node = ctx.node
    ledger = node.ledger
    head = ledger.head
    extra = node.status_extra()
    return {
        **extra,
        "chain_id": node.chain_id,
        "genesis_hash": node.genesis.hash.hex(),
        "height": head.height,
        "block_hash": extra.get("block_hash"),
        "block_time_ms": head.time_ms,
        "period": head.period,
        "state_root": ledger.state_root.hex(),
        "syncing": bool(extra.get("syncing", False)),
        "peers": int(extra.get("peers", 0)),
        "is_validator": bool(extra.get("is_validator", False)),
    }


async def handle_account(ctx: CallContext, address: bytes, project_periods: int = 0) -> dict[str, Any]:
    ledger = ctx.node.ledger
    info = get_account_info(ledger.view(), address)
    info["height"] = ledger.head.height
    if project_periods:
        info["projection"] = get_account_projection(ledger.view(), address, project_periods)
    return info


async def handle_supply(ctx: CallContext) -> dict[str, Any]:
    ledger = ctx.node.ledger
    return {"height": ledger.head.height, **get_supply(ledger.view())}


async def handle_params(ctx: CallContext) -> dict[str, Any]:
    view = ctx.node.ledger.view()
    rules = get_rules(view)
    return {
        **to_json_ready(view.get_params()),
        "rules": to_json_ready(rules),
        "resources": {r: to_json_ready(get_resource(view, r)) for r in rules.resources},
        "nodes": [n.id for n in ctx.node.genesis.nodes],
        "rate_scale": RATE_SCALE,
        "units_per_coin": UNITS_PER_COIN,
        "max_amount": MAX_AMOUNT,
        "max_tx_bytes": MAX_TX_BYTES,
        "max_txs_per_block": MAX_TXS_PER_BLOCK,
        "max_signatures_per_tx": MAX_SIGNATURES_PER_TX,
        "max_memo_bytes": MAX_MEMO_BYTES,
    }


async def handle_submit_tx(ctx: CallContext, tx: bytes) -> dict[str, Any]:
    tx_hash = await ctx.node.submit_tx(tx)
    return {"hash": tx_hash.hex()}


async def handle_submit_tx_commit(ctx: CallContext, tx: bytes, timeout_ms: int = COMMIT_TIMEOUT_MS_DEFAULT) -> dict[str, Any]:
    tx_hash = await ctx.node.submit_tx(tx)
    result = await ctx.node.wait_for_tx(tx_hash, timeout_ms / 1000)
    if result is None:
        raise RpcError(
            ErrorCode.NOT_COMMITTED,
            f"transaction admitted but not committed within {timeout_ms} ms; look it up later with tx",
            {"hash": tx_hash.hex()},
        )
    return tx_result_to_json(result)


async def handle_tx(ctx: CallContext, hash: bytes) -> dict[str, Any] | None:
    result = ctx.node.get_tx(hash)
    return None if result is None else tx_result_to_json(result)


async def handle_account_txs(
    ctx: CallContext, address: bytes, limit: int = 20, before_height: int | None = None, before_index: int = 0
) -> dict[str, Any]:
    before = None if before_height is None else (before_height, before_index)
    results = ctx.node.get_account_txs(address, limit, before)
    return {"address": address.hex(), "txs": [tx_result_to_json(r) for r in results[:limit]]}


async def handle_block(ctx: CallContext, height: int | None = None) -> dict[str, Any] | None:
    return ctx.node.get_block(ctx.node.ledger.head.height if height is None else height)


async def handle_validators(ctx: CallContext, height: int | None = None) -> dict[str, Any] | None:
    h = ctx.node.ledger.head.height if height is None else height
    validators = ctx.node.validators(h)
    return None if validators is None else {"height": h, "validators": validators}


async def handle_proof(ctx: CallContext, address: bytes, height: int | None = None) -> dict[str, Any]:
    ledger = ctx.node.ledger
    head = ledger.head.height
    h = head if height is None else height
    if h > head:
        raise RpcError(ErrorCode.UNAVAILABLE, f"height {h} is not committed yet (head {head})", {"head": head})
    key = account_key(address)
    try:
        value, proof = ledger.prove(key, h)
    except HistoryUnavailable as exc:
        raise RpcError(ErrorCode.UNAVAILABLE, str(exc), {"head": head}) from None
    root = ledger.state_root if h == head else ledger.root_at(h)
    return {
        "height": h,
        "state_root": None if root is None else root.hex(),
        "address": address.hex(),
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "account": None if value is None else to_json_ready(decode_record(key, value)),
        "proof": to_json_ready(proof.to_wire()),
    }


# nodes, membership, quotas, housing: the ledger's own queries, at the head ---------------------------------
def with_height(ctx: CallContext, info: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if info is None else {**info, "height": ctx.node.ledger.head.height}


async def handle_node(ctx: CallContext, id: str) -> dict[str, Any] | None:
    return with_height(ctx, get_node_info(ctx.node.ledger.view(), id))


async def handle_member(ctx: CallContext, address: bytes) -> dict[str, Any] | None:
    return with_height(ctx, get_member_info(ctx.node.ledger.view(), address))


async def handle_quota(ctx: CallContext, address: bytes, resource: str) -> dict[str, Any] | None:
    return with_height(ctx, get_quota_info(ctx.node.ledger.view(), address, resource))


async def handle_housing_unit(ctx: CallContext, node: str, unit: str) -> dict[str, Any] | None:
    return with_height(ctx, get_unit_info(ctx.node.ledger.view(), node, unit))


async def handle_housing_right(ctx: CallContext, address: bytes) -> dict[str, Any] | None:
    return with_height(ctx, get_right_info(ctx.node.ledger.view(), address))


async def handle_housing_queue(ctx: CallContext, node: str, limit: int = 100) -> dict[str, Any] | None:
    view = ctx.node.ledger.view()
    queue = get_housing_queue(view, node, limit)
    return with_height(ctx, {"node": node, "waiting": count_waiting(view, node), "vacant": count_vacant(view, node), "queue": queue})


@functools.cache
def load_openrpc() -> dict[str, Any]:
    with open(OPENRPC_PATH, encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


async def handle_discover(ctx: CallContext) -> dict[str, Any]:
    return load_openrpc()


def require_websocket(ctx: CallContext) -> Subscriptions:
    if ctx.subscriptions is None:
        raise RpcError(ErrorCode.METHOD_NOT_FOUND, "subscriptions are served over the websocket at /ws")
    return ctx.subscriptions


async def handle_subscribe(
    ctx: CallContext, event: str, hash: bytes | None = None, timeout_ms: int = COMMIT_TIMEOUT_MS_MAX
) -> dict[str, Any]:
    subs = require_websocket(ctx)
    if event == "new_block":
        if hash is not None:
            raise invalid_params("hash is only for event 'tx'")
        return {"subscription": subs.add_block_subscription()}
    if hash is None:
        raise invalid_params("event 'tx' needs the transaction's hash")
    return {"subscription": subs.add_tx_subscription(hash, timeout_ms / 1000)}


async def handle_unsubscribe(ctx: CallContext, subscription: str) -> bool:
    return require_websocket(ctx).remove_subscription(subscription)


ADDRESS = Param("address", parse_address)
OPTIONAL_HEIGHT = Param("height", parse_height, required=False)
SIGNED_TX = Param("tx", parse_hex)

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("status", handle_status),
        Method("account", handle_account, (ADDRESS, Param("project_periods", int_between(0, PROJECT_PERIODS_MAX), required=False))),
        Method("supply", handle_supply),
        Method("params", handle_params),
        Method("submit_tx", handle_submit_tx, (SIGNED_TX,)),
        Method(
            "submit_tx_commit",
            handle_submit_tx_commit,
            (SIGNED_TX, Param("timeout_ms", int_between(0, COMMIT_TIMEOUT_MS_MAX), required=False)),
            timeout_s=COMMIT_TIMEOUT_MS_MAX / 1000 + 5,
        ),
        Method("tx", handle_tx, (Param("hash", parse_hash),)),
        Method(
            "account_txs",
            handle_account_txs,
            (
                ADDRESS,
                Param("limit", int_between(1, ACCOUNT_TXS_LIMIT_MAX), required=False),
                Param("before_height", parse_height, required=False),
                Param("before_index", int_between(0, MAX_TXS_PER_BLOCK), required=False),
            ),
        ),
        Method("block", handle_block, (OPTIONAL_HEIGHT,)),
        Method("validators", handle_validators, (OPTIONAL_HEIGHT,)),
        Method("proof", handle_proof, (ADDRESS, OPTIONAL_HEIGHT)),
        Method("node", handle_node, (Param("id", parse_id),)),
        Method("member", handle_member, (ADDRESS,)),
        Method("quota", handle_quota, (ADDRESS, Param("resource", parse_id))),
        Method("housing_unit", handle_housing_unit, (Param("node", parse_id), Param("unit", parse_id))),
        Method("housing_right", handle_housing_right, (ADDRESS,)),
        Method("housing_queue", handle_housing_queue, (Param("node", parse_id), Param("limit", int_between(1, HOUSING_QUEUE_LIMIT_MAX), required=False))),
        Method("rpc.discover", handle_discover),
        Method(
            "subscribe",
            handle_subscribe,
            (
                Param("event", one_of("new_block", "tx")),
                Param("hash", parse_hash, required=False),
                Param("timeout_ms", int_between(1, COMMIT_TIMEOUT_MS_MAX), required=False),
            ),
            websocket_only=True,
        ),
        Method("unsubscribe", handle_unsubscribe, (Param("subscription", parse_subscription_id),), websocket_only=True),
    )
}


async def call_method(ctx: CallContext, name: str, params: Mapping[str, Any]) -> Any:
    """Run one call. Raises RpcError for every answer that is an error the client caused or can
    act on; anything else escaping is a bug the server reports as INTERNAL_ERROR."""
    method = METHODS.get(name)
    if method is None:
        raise RpcError(ErrorCode.METHOD_NOT_FOUND, f"method not found: {name[:64]!r}; rpc.discover lists them")
    kwargs = method.parse_params(params)
    try:
        async with asyncio.timeout(method.timeout_s):  # no task per call, as wait_for would make
            return await method.handler(ctx, **kwargs)
    except (Rejected, MempoolFull) as exc:
        raise refusal_error(exc) from None
    except TooManySubscribers as exc:
        raise RpcError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, str(exc)) from None
    except TxIndexDisabled as exc:
        raise RpcError(ErrorCode.NO_TX_INDEX, str(exc)) from None
    except asyncio.TimeoutError:
        raise RpcError(ErrorCode.INTERNAL_ERROR, f"{name} did not finish within {method.timeout_s} s") from None


async def call_submit_txs(ctx: CallContext, raws: list[bytes]) -> list[Any]:
    """Many `submit_tx` calls (their params parsed already) in one node call: for each, the result
    `call_method` would give, or the RpcError it would raise, in order."""
    method = METHODS["submit_tx"]
    try:
        async with asyncio.timeout(method.timeout_s):
            outcomes = await ctx.node.submit_txs(raws)
    except asyncio.TimeoutError:
        error = RpcError(ErrorCode.INTERNAL_ERROR, f"submit_tx did not finish within {method.timeout_s} s")
        return [error] * len(raws)
    return [_submit_answer(outcome) for outcome in outcomes]


def _submit_answer(outcome: bytes | Exception) -> Any:
    if isinstance(outcome, bytes):
        return {"hash": outcome.hex()}
    if isinstance(outcome, (Rejected, MempoolFull)):
        return refusal_error(outcome)
    raise outcome


def refusal_error(exc: Rejected | MempoolFull) -> RpcError:
    """The answer to a transaction the ledger or the mempool refused: its number, with the refusal
    as `data`."""
    number = exc.code.number if isinstance(exc, Rejected) else exc.number
    return RpcError(number, exc.message, exc.to_dict())

"""Transactions: wire format, field schemas, signatures.

Wire form: canonical msgpack of [body_bytes, [[public_key, signature], ...]] where body_bytes is the
canonical msgpack of a map with at least type, chain, from and nonce. Signatures are ed25519 over
TX_SIGN_DOMAIN + chain_id + 0x00 + body_bytes, listed in ascending public-key order, one per key.
The transaction hash is SHA-256 of the whole wire form. See specs/monetary.md, "Encoding".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from ledger import encoding
from ledger.constants import (
    ADDRESS_BYTES,
    MAX_AMOUNT,
    MAX_MEMO_BYTES,
    MAX_SIGNATURES_PER_TX,
    MAX_TX_BYTES,
    SIGNATURE_BYTES,
    TX_SIGN_DOMAIN,
)
from ledger.crypto import Keypair, sha256, verify_signature
from ledger.errors import Code, Rejected, check_invariant
from ledger.records import fast_init

# field checkers: each returns the value or raises Rejected ---------------------------------------
Checker = Callable[[str, Any], Any]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_address(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != ADDRESS_BYTES:
        raise Rejected(Code.TX_BAD_FIELD, f"{name} must be {ADDRESS_BYTES} bytes")
    return value


def check_amount(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):  # not is_int(value), inlined
        raise Rejected(Code.TX_BAD_FIELD, f"{name} must be an integer")
    if value <= 0:
        raise Rejected(Code.AMOUNT_NOT_POSITIVE, f"{name} must be positive, got {value}")
    if value > MAX_AMOUNT:
        raise Rejected(Code.AMOUNT_OUT_OF_RANGE, f"{name} exceeds {MAX_AMOUNT}")
    return value


def check_nonnegative_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > MAX_AMOUNT:
        raise Rejected(Code.TX_BAD_FIELD, f"{name} must be an integer from 0 to {MAX_AMOUNT}")
    return value


def check_text(max_bytes: int) -> Checker:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or len(value.encode()) > max_bytes:
            raise Rejected(Code.TX_BAD_FIELD, f"{name} must be text of at most {max_bytes} bytes")
        return value

    return check


def check_hash(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise Rejected(Code.TX_BAD_FIELD, f"{name} must be a 32-byte hash")
    return value


def check_int_range(low: int, high: int) -> Checker:
    def check(name: str, value: Any) -> int:
        if not is_int(value) or not low <= value <= high:
            raise Rejected(Code.TX_BAD_FIELD, f"{name} must be an integer from {low} to {high}")
        return value

    return check


ID_MAX_CHARS = 32
_ID_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("._-")


def is_valid_id(value: Any) -> bool:
    """Ids of nodes, resources, units and modification kinds: 1 to 32 characters of [a-z0-9._-],
    starting with a letter or digit (so a NUL can separate ids inside a state key)."""
    return (
        isinstance(value, str)
        and 1 <= len(value) <= ID_MAX_CHARS
        and value[0] in _ID_FIRST
        and all(c in _ID_REST for c in value)
    )


def check_id(name: str, value: Any) -> str:
    if not is_valid_id(value):
        raise Rejected(Code.TX_BAD_FIELD, f"{name} must be 1 to {ID_MAX_CHARS} characters of [a-z0-9._-]")
    return value


@dataclass(frozen=True)
class Field:
    check: Checker
    required: bool = True


COMMON_FIELDS: dict[str, Field] = {
    "type": Field(check_text(64)),
    "chain": Field(check_text(64)),
    "from": Field(check_address),
    "nonce": Field(check_nonnegative_int),
}

_PROVIDER = {"node": Field(check_id), "resource": Field(check_id), "provider": Field(check_address)}
_UNIT = {"node": Field(check_id), "unit": Field(check_id)}
_COHOLDER = {**_UNIT, "coholder": Field(check_address)}

TX_SCHEMAS: dict[str, dict[str, Field]] = {
    "transfer": {"to": Field(check_address), "amount": Field(check_amount), "memo": Field(check_text(MAX_MEMO_BYTES), required=False)},
    # nodes and membership (specs/membership.md); council actions are sent from the node's council account
    "member_add": {"node": Field(check_id), "member": Field(check_address)},
    "member_remove": {"node": Field(check_id), "member": Field(check_address)},
    "member_leave": {},
    "node_set_params": {
        "node": Field(check_id),
        "housing_fee": Field(check_nonnegative_int, required=False),
        "area_delta_max": Field(check_nonnegative_int, required=False),
        "area_total_max": Field(check_nonnegative_int, required=False),
    },
    # quotas (specs/quotas.md)
    "provider_add": _PROVIDER,
    "provider_remove": _PROVIDER,
    "quota_set_cap": {"node": Field(check_id), "resource": Field(check_id), "cap": Field(check_nonnegative_int)},
    "quota_consume": {"member": Field(check_address), "resource": Field(check_id), "amount": Field(check_amount)},
    "quota_trade": {
        "resource": Field(check_id),
        "to": Field(check_address),
        "amount": Field(check_amount),
        "price": Field(check_nonnegative_int, required=False),
    },
    # housing (specs/housing.md)
    "unit_add": {**_UNIT, "capacity": Field(check_int_range(1, 255)), "attributes": Field(check_hash)},
    "housing_apply": {"household": Field(check_int_range(1, 255)), "needs": Field(check_int_range(0, 255))},
    "housing_withdraw": {},
    "housing_release": _UNIT,
    "housing_coholder_add": _COHOLDER,
    "housing_coholder_remove": _COHOLDER,
    "housing_modify": {**_UNIT, "kind": Field(check_id), "area_delta": Field(check_int_range(-(10**9), 10**9))},
    # stake (specs/consensus.md, "Stake and slashing"); `from` is the validator's own account
    "validator_bond": {"validator": Field(check_address), "stake": Field(check_amount), "name": Field(check_text(64))},
    "validator_unbond": {},
}
"""Type-specific fields of each transaction type. A new type adds its schema here and its
`process_<type>` function to ledger.transition.TX_PROCESSORS."""


@fast_init
@dataclass(frozen=True, slots=True)
class Tx:
    """A decoded, well-formed transaction. Signatures are not yet verified."""

    raw: bytes
    hash: bytes
    body_bytes: bytes
    body: dict[str, Any]
    signatures: tuple[tuple[bytes, bytes], ...]

    @property
    def type(self) -> str:
        return self.body["type"]

    @property
    def sender(self) -> bytes:
        return self.body["from"]

    @property
    def nonce(self) -> int:
        return self.body["nonce"]

    @property
    def signers(self) -> frozenset[bytes]:
        return frozenset(pk for pk, _ in self.signatures)


_SIGN_PREFIXES: dict[str, bytes] = {}


def compute_sign_bytes(chain_id: str, body_bytes: bytes) -> bytes:
    prefix = _SIGN_PREFIXES.get(chain_id)
    if prefix is None:
        if len(_SIGN_PREFIXES) >= 64:
            _SIGN_PREFIXES.clear()
        prefix = _SIGN_PREFIXES[chain_id] = TX_SIGN_DOMAIN + chain_id.encode() + b"\x00"
    return prefix + body_bytes


def decode_tx(raw: bytes, tx_hash: bytes | None = None) -> Tx:
    """Parse and check a transaction's form. Raises Rejected with a stable code on any defect.
    `tx_hash`: sha256(raw), when the caller has just computed it from these very bytes (a node
    hashes what a peer or client sends before it checks it), so it is not computed twice."""
    if not isinstance(raw, (bytes, bytearray)):
        raise Rejected(Code.TX_MALFORMED, "transaction must be bytes")
    raw = bytes(raw)
    if len(raw) > MAX_TX_BYTES:
        raise Rejected(Code.TX_TOO_LARGE, f"transaction is {len(raw)} bytes; the limit is {MAX_TX_BYTES}")
    # encoding.decode and encoding.encode_fast, inlined (their limits: MAX_TX_BYTES): this runs for
    # every transaction a node receives
    try:
        envelope = _unpack_envelope(raw)  # tuples: the signatures as they are kept
    except Exception as exc:  # msgpack raises many types; all mean malformed input
        raise Rejected(Code.TX_MALFORMED, f"undecodable: {type(exc).__name__}") from None
    if not (type(envelope) is tuple and len(envelope) == 2 and type(envelope[0]) is bytes and type(envelope[1]) is tuple):
        raise Rejected(Code.TX_MALFORMED, "a transaction is [body bytes, signatures]")
    body_bytes, sig_list = envelope
    signatures = _check_signature_list(sig_list)
    try:
        body = _unpack_body(body_bytes)
    except Exception as exc:
        raise Rejected(Code.TX_MALFORMED, f"body: undecodable: {type(exc).__name__}") from None
    is_map = type(body) is dict
    plain = is_map and _is_plain_transfer(body)  # then it has the canonical form and its fields are good
    try:
        pack = encoding.fast_packer()
        if not (plain or encoding.has_canonical_form(body)) or pack(body) != body_bytes or pack(envelope) != raw:
            raise encoding.EncodingError("not canonical")
    except encoding.EncodingError as exc:
        raise Rejected(Code.TX_MALFORMED, f"body: {exc}") from None
    except (TypeError, ValueError, RecursionError) as exc:  # whatever the bytes hold, a stable rejection
        raise Rejected(Code.TX_MALFORMED, f"body: {type(exc).__name__}") from None
    if not is_map:
        raise Rejected(Code.TX_MALFORMED, "body must be a map")
    if not plain:
        _check_body(body)
    return Tx(raw, _sha256(raw).digest() if tx_hash is None else tx_hash, body_bytes, body, signatures)


_unpack_envelope = encoding.limited_unpacker(MAX_TX_BYTES, use_list=False)
_unpack_body = encoding.limited_unpacker(MAX_TX_BYTES)
_sha256 = hashlib.sha256


_TRANSFER_KEYS = ("amount", "chain", "from", "nonce", "to", "type")
_TRANSFER_MEMO_KEYS = ("amount", "chain", "from", "memo", "nonce", "to", "type")
check_invariant(
    set(_TRANSFER_KEYS) == set(COMMON_FIELDS) | {n for n, f in TX_SCHEMAS["transfer"].items() if f.required}
    and set(_TRANSFER_MEMO_KEYS) == set(COMMON_FIELDS) | set(TX_SCHEMAS["transfer"])
    and list(_TRANSFER_KEYS) == sorted(_TRANSFER_KEYS) and list(_TRANSFER_MEMO_KEYS) == sorted(_TRANSFER_MEMO_KEYS),
    "the plain transfer layouts are a transfer's fields, in canonical order",
)


def _is_plain_transfer(body: dict[str, Any]) -> bool:
    """True iff `body` is a transfer whose keys are a transfer's fields in canonical order and whose
    every field passes its check (`check_text`, `check_address`, `check_amount`,
    `check_nonnegative_int`, inlined). Then `has_canonical_form(body)` holds (the keys are sorted
    text, every value an int, text or bytes) and `_check_body(body)` passes, so `decode_tx` skips
    both: the one shape nearly every transaction has, checked in a third of their time. False
    sends the body the general way, which gives any refusal."""
    keys = tuple(body)
    if keys == _TRANSFER_KEYS:
        amount, chain, sender, nonce, to, kind = body.values()
        memo = ""
    elif keys == _TRANSFER_MEMO_KEYS:
        amount, chain, sender, memo, nonce, to, kind = body.values()
    else:
        return False
    return (
        kind == "transfer"
        and type(kind) is str
        and type(chain) is str
        and len(chain.encode()) <= 64
        and type(sender) is bytes
        and len(sender) == ADDRESS_BYTES
        and type(to) is bytes
        and len(to) == ADDRESS_BYTES
        and type(amount) is int
        and 0 < amount <= MAX_AMOUNT
        and type(nonce) is int
        and 0 <= nonce <= MAX_AMOUNT
        and type(memo) is str
        and len(memo.encode()) <= MAX_MEMO_BYTES
    )


def trusted_tx(raw: bytes, tx_hash: bytes | None = None) -> Tx:
    """The `Tx` that `decode_tx(raw)` returned in this node's own signature worker, rebuilt here
    without checking the form again (the worker did, on these very bytes, so plain msgpack decodes
    them to the same values); `tx_hash` when the worker sent it. Never for bytes from anywhere else.
    Tested equal to decode_tx (tests/node/test_verifier.py, tests/audit)."""
    body_bytes, signatures = _unpackb(raw, use_list=False)  # tuples, as decode_tx keeps them
    return Tx(raw, sha256(raw) if tx_hash is None else tx_hash, body_bytes, encoding.decode_stored(body_bytes), signatures)


_unpackb = msgpack.unpackb


def _check_signature_list(sig_list: tuple[Any, ...]) -> tuple[tuple[bytes, bytes], ...]:
    """The decoded signature array (tuples), checked: it is the transaction's `signatures` as is."""
    if not sig_list:
        raise Rejected(Code.TX_MISSING_FIELD, "transaction has no signature")
    if len(sig_list) > MAX_SIGNATURES_PER_TX:
        raise Rejected(Code.TX_BAD_FIELD, f"more than {MAX_SIGNATURES_PER_TX} signatures")
    previous = b""
    for item in sig_list:
        if not (
            type(item) is tuple
            and len(item) == 2
            and type(item[0]) is bytes
            and len(item[0]) == ADDRESS_BYTES
            and type(item[1]) is bytes
            and len(item[1]) == SIGNATURE_BYTES
        ):
            raise Rejected(Code.TX_BAD_FIELD, "a signature is [32-byte public key, 64-byte signature]")
        if item[0] <= previous:
            raise Rejected(Code.TX_BAD_FIELD, "signatures must be in ascending key order, one per key")
        previous = item[0]
    return sig_list


_COMMON_CHECKS = tuple((name, field.check) for name, field in COMMON_FIELDS.items())
_TYPE_RULES: dict[str, tuple[tuple[tuple[str, Checker, bool], ...], frozenset[str]]] = {}
"""Per transaction type: its fields as (name, check, required), and the common and type fields it
may carry (filled on first use)."""


def _check_body(body: dict[str, Any]) -> None:
    for name, check in _COMMON_CHECKS:
        if name not in body:
            raise Rejected(Code.TX_MISSING_FIELD, f"missing field {name!r}")
        check(name, body[name])
    tx_type = body["type"]
    rules = _TYPE_RULES.get(tx_type)
    if rules is None:
        schema = TX_SCHEMAS.get(tx_type)
        if schema is None:
            raise Rejected(Code.TX_UNKNOWN_TYPE, f"unknown transaction type {tx_type!r}")
        fields = tuple((name, field.check, field.required) for name, field in schema.items())
        rules = _TYPE_RULES[tx_type] = (fields, frozenset(COMMON_FIELDS) | frozenset(schema))
    fields, allowed = rules
    for name, check, required in fields:
        if name in body:
            check(name, body[name])
        elif required:
            raise Rejected(Code.TX_MISSING_FIELD, f"missing field {name!r}")
    if not allowed.issuperset(body):
        raise Rejected(Code.TX_BAD_FIELD, f"unknown field(s) {sorted(set(body) - allowed)}")


def verify_tx_signatures(tx: Tx, chain_id: str) -> None:
    """Raise Rejected(BAD_SIGNATURE) unless every signature verifies."""
    message = compute_sign_bytes(chain_id, tx.body_bytes)
    for public_key, signature in tx.signatures:
        if not verify_signature(public_key, message, signature):
            raise Rejected(Code.BAD_SIGNATURE, f"signature by {public_key.hex()[:16]}… does not verify")


class SignatureCache:
    """Transactions whose signatures this node has verified, so each is decoded and checked once.

    It holds the hashes of verified transactions and, for the most recent ones, the decoded `Tx`
    by its wire bytes, so block building and execution of a peer's proposal reuse what the mempool
    decoded. Bounded: when full it forgets the oldest half (a forgotten one is simply decoded and
    verified again).
    """

    def __init__(self, capacity: int = 200_000, decoded_capacity: int = 50_000) -> None:
        self._capacity = capacity
        self._decoded_capacity = decoded_capacity
        self._hashes: dict[bytes, None] = {}
        self._decoded: dict[bytes, Tx] = {}

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._hashes

    def add(self, tx_hash: bytes) -> None:
        """Record that the transaction with this hash has valid signatures."""
        if len(self._hashes) >= self._capacity:
            for h in list(self._hashes)[: self._capacity // 2]:
                del self._hashes[h]
        self._hashes[tx_hash] = None

    def remember(self, tx: Tx) -> None:
        """Record a verified transaction and keep it decoded. Remembering one kept already changes
        nothing (a key set again keeps its place), so it costs a lookup: a node's verifier and its
        mempool both remember what the verifier passed."""
        if self._decoded.get(tx.raw) is tx:
            return
        self.add(tx.hash)
        if len(self._decoded) >= self._decoded_capacity:
            for raw in list(self._decoded)[: self._decoded_capacity // 2]:
                del self._decoded[raw]
        self._decoded[tx.raw] = tx

    def decoded(self, raw: bytes) -> Tx | None:
        """The verified transaction with these wire bytes, if it is still kept decoded."""
        return self._decoded.get(raw)

    def forget_decoded(self, txs: Iterable[Tx]) -> None:
        """Stop keeping these transactions decoded (a node's just committed ones: nothing decodes
        them again but a late copy from a peer, which finds its hash here and is decoded, not
        checked again). Their hashes stay: what is kept decoded is then what is pending, not the
        last `decoded_capacity` transactions the node saw, and a long-loaded node's heap holds
        that many fewer objects."""
        decoded = self._decoded
        for tx in txs:
            decoded.pop(tx.raw, None)

    def __len__(self) -> int:
        return len(self._hashes)


# building and signing (wallets, tests, benchmarks) ------------------------------------------------
def encode_body(tx_type: str, chain_id: str, sender: bytes, nonce: int, **fields: Any) -> bytes:
    return encoding.encode({"type": tx_type, "chain": chain_id, "from": sender, "nonce": nonce, **fields})


def sign_tx(chain_id: str, body_bytes: bytes, signers: list[Keypair]) -> bytes:
    """Wire bytes of a body signed by every keypair in `signers`."""
    message = compute_sign_bytes(chain_id, body_bytes)
    sigs = sorted((kp.public_key, kp.sign(message)) for kp in signers)
    return encoding.encode([body_bytes, [[pk, sig] for pk, sig in sigs]])


def add_signatures(raw: bytes, chain_id: str, signers: list[Keypair]) -> bytes:
    """Add signatures to a transaction (multi-party signing); existing ones are kept."""
    tx = decode_tx(raw)
    message = compute_sign_bytes(chain_id, tx.body_bytes)
    sigs = dict(tx.signatures)
    for kp in signers:
        sigs[kp.public_key] = kp.sign(message)
    return encoding.encode([tx.body_bytes, [[pk, sigs[pk]] for pk in sorted(sigs)]])


def make_tx(chain_id: str, tx_type: str, signer: Keypair, nonce: int, sender: bytes | None = None, **fields: Any) -> bytes:
    """A transaction of one signer, from its own account unless `sender` names another."""
    body = encode_body(tx_type, chain_id, sender or signer.public_key, nonce, **fields)
    return sign_tx(chain_id, body, [signer])

"""The state transition: apply_block(state, block), and one process_<type> per transaction type.

Normative text: specs/monetary.md, "State transition". Everything here is a deterministic function
of the state and the block: no clock, no randomness, no I/O, integers only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ledger import housing, nodes, quotas, staking
from ledger.constants import MAX_TXS_PER_BLOCK
from ledger.errors import Code, Rejected, check_invariant, detached
from ledger.authorization import require_sole_signer, settle_sender
from ledger.monetary import check_conservation, compute_period, process_periods, settle_account_as_read
from ledger.records import Account, ChainHead
from ledger.state import State
from ledger.tx import TX_SCHEMAS, SignatureCache, Tx, decode_tx, verify_tx_signatures


@dataclass(frozen=True)
class BlockInput:
    """What the ledger needs of a block: its height, its time, its transactions, and the
    validators that verified evidence shows misbehaved (to be slashed)."""

    height: int
    time_ms: int
    txs: tuple[bytes, ...] = ()
    slashes: tuple[bytes, ...] = field(default=())


# transaction processing ------------------------------------------------------------------------------
def process_transfer(state: State, tx: Tx) -> None:
    sender_address = tx.body["from"]
    require_sole_signer(tx, sender_address)
    to, amount = tx.body["to"], tx.body["amount"]
    if to == sender_address:
        raise Rejected(Code.SELF_TRANSFER)
    period = state.get_head().period  # both accounts are settled to it, and neither settlement writes the head
    sender = settle_sender(state, tx, period)
    if sender.balance < amount:
        raise Rejected(Code.INSUFFICIENT_FUNDS, f"balance {sender.balance} < amount {amount}")
    # the nonce consumed and the amount debited in one write (process_nonce, then the debit)
    state.set_account(sender_address, Account(sender.balance - amount, sender.nonce + 1, sender.settled_period))
    recipient = settle_account_as_read(state, to, state.get_account(to), period)
    state.set_account(to, Account(recipient.balance + amount, recipient.nonce, recipient.settled_period))


TX_PROCESSORS: dict[str, Callable[[State, Tx], None]] = {
    "transfer": process_transfer,
    # specs/membership.md
    "member_add": nodes.process_member_add,
    "member_remove": nodes.process_member_remove,
    "member_leave": nodes.process_member_leave,
    "node_set_params": nodes.process_node_set_params,
    # specs/quotas.md
    "provider_add": quotas.process_provider_add,
    "provider_remove": quotas.process_provider_remove,
    "quota_set_cap": quotas.process_quota_set_cap,
    "quota_consume": quotas.process_quota_consume,
    "quota_trade": quotas.process_quota_trade,
    # specs/housing.md
    "unit_add": housing.process_unit_add,
    "housing_apply": housing.process_housing_apply,
    "housing_withdraw": housing.process_housing_withdraw,
    "housing_release": housing.process_housing_release,
    "housing_coholder_add": housing.process_housing_coholder_add,
    "housing_coholder_remove": housing.process_housing_coholder_remove,
    "housing_modify": housing.process_housing_modify,
    # specs/consensus.md, "Stake and slashing"
    "validator_bond": staking.process_validator_bond,
    "validator_unbond": staking.process_validator_unbond,
}
check_invariant(TX_PROCESSORS.keys() == TX_SCHEMAS.keys(), "every transaction type has a schema and a processor")

HEAD_PERIOD_ONLY_TYPES = frozenset({"transfer"})
"""Transaction types whose processing reads the chain head for its period alone (settlement), never
its height or time: applied to two states that differ only in the head's height and time, they
write the same. `effect_holds` relies on it, so consensus does: validators and proposers apply such
a transaction's recorded writes in a later block of the same period without running it again, and a
type listed here wrongly would make nodes with and without records disagree on the state root
(tests/ledger/test_process_tx.py pins it for every type listed)."""

HEAD_KEY = ChainHead.PREFIX
"""The chain head record's key (height, time, period): every block writes it."""


def process_tx(
    state: State, tx_or_raw: bytes | Tx, verified: SignatureCache | None = None, chain_id: str | None = None
) -> Tx:
    """Apply one transaction to `state` (an overlay the caller drops if this raises Rejected).

    Takes wire bytes or an already decoded `Tx`. Signatures are verified unless the hash is in
    `verified`; on success the transaction is remembered there, so this node checks it once.
    `chain_id` is the state's (a caller applying many transactions reads it once).
    """
    if chain_id is None:
        chain_id = state.get_params().chain_id
    tx = check_tx_bytes(tx_or_raw, verified, chain_id)
    TX_PROCESSORS[tx.body["type"]](state, tx)
    return tx


def check_tx_bytes(tx_or_raw: bytes | Tx, verified: SignatureCache | None, chain_id: str) -> Tx:
    """What a transaction must pass before its `process_<type>` runs, which depends on its bytes
    alone, never on the state: its form (`decode_tx`), its chain, its signatures (verified unless
    its hash is in `verified`, and remembered there once they verify). Its `Tx`, or Rejected."""
    if isinstance(tx_or_raw, Tx):
        tx = tx_or_raw
    else:
        tx = verified.decoded(tx_or_raw) if verified is not None else None
        if tx is None:
            tx = decode_tx(tx_or_raw)
    body = tx.body
    if body["chain"] != chain_id:
        raise Rejected(Code.WRONG_CHAIN, f"transaction is for chain {body['chain']!r}, this is {chain_id!r}")
    if verified is None or tx.hash not in verified:
        verify_tx_signatures(tx, chain_id)
        if verified is not None:
            verified.remember(tx)
    return tx


def check_tx(state: State, raw: bytes, verified: SignatureCache | None = None) -> Tx:
    """Would `raw` apply to `state`? Leaves `state` unchanged either way."""
    return process_tx(state.child(), raw, verified)


# slashing ------------------------------------------------------------------------------------------------
def process_slash(state: State, validator_address: bytes) -> int:
    """Slash a validator that verified evidence shows misbehaved: ledger/staking.py, STAKE-6/7."""
    return staking.process_slash(state, validator_address)


# the block -------------------------------------------------------------------------------------------------
def process_block_header(state: State, block: BlockInput) -> None:
    head = state.get_head()
    if block.height != head.height + 1:
        raise Rejected(Code.BLOCK_HEIGHT, f"block height {block.height} does not follow {head.height}")
    if block.time_ms < head.time_ms:
        raise Rejected(Code.BLOCK_TIME, f"block time {block.time_ms} is before the head's {head.time_ms}")
    if len(block.txs) > MAX_TXS_PER_BLOCK:
        raise Rejected(Code.BLOCK_INVALID, f"more than {MAX_TXS_PER_BLOCK} transactions")
    params = state.get_params()
    period = compute_period(block.time_ms, params.genesis_time_ms, params.period_seconds)
    process_periods(state, period)
    state.set_head(ChainHead(block.height, block.time_ms, period))
    staking.process_unbonding_releases(state, block.height)


class TxEffect(Protocol):
    """What applying a transaction did, as recorded by whoever applied it through a read tracker:
    the value of every state key it read from the state below it, the head record included (None:
    it listed a prefix, so it depends on more than single keys), and the records it wrote (None
    marks a deletion). A key it read after writing it is not a read from below."""

    tx: Tx
    reads: Mapping[bytes, Any] | None
    writes: Mapping[bytes, Any]


class KnownEffects(Protocol):
    """Recorded effects by transaction hash (a mempool keeps one for each transaction it admitted)."""

    def get(self, tx_hash: bytes, /) -> TxEffect | None: ...


def effect_holds(state: State, effect: TxEffect) -> bool:
    """Whether applying `effect.tx` to `state` would write exactly what was recorded. Applying a
    transaction is a function of the values of the keys it reads, so it does when it listed no
    prefix and every key it read still has the value it read then; for the types in
    HEAD_PERIOD_ONLY_TYPES, the head record need only be of the same period."""
    reads = effect.reads
    if reads is None:
        return False
    period_only = effect.tx.type in HEAD_PERIOD_ONLY_TYPES
    get = state.get
    for key, value in reads.items():
        now = get(key)
        if now is value:
            continue
        if key == HEAD_KEY and period_only:
            if now.period != value.period:
                return False
        elif now != value:
            return False
    return True


def reads_untouched(effect: TxEffect, changed: AbstractSet[bytes]) -> bool:
    """Whether none of the keys `effect` read is in `changed`, the head record aside for the types in
    HEAD_PERIOD_ONLY_TYPES; False when it listed a prefix. A caller that knows the state the effect
    was recorded on differs from the present one only in `changed` (and, for those types, in the
    head's height and time, the period the same) knows from this alone that it holds: every value it
    read is still there (`effect_holds`, without reading them)."""
    reads = effect.reads
    if reads is None:
        return False
    if HEAD_KEY in reads and effect.tx.type not in HEAD_PERIOD_ONLY_TYPES:
        return False
    return reads.keys().isdisjoint(changed)


def apply_effect_if_holds(state: State, effect: TxEffect) -> bool:
    """Write `effect`'s recorded writes to `state` if it holds there (`effect_holds`); whether it did."""
    if not effect_holds(state, effect):
        return False
    state.changes.update(effect.writes)
    return True


def apply_known_effect(
    state: State, raw: bytes, verified: SignatureCache | None, known: KnownEffects | None
) -> Tx | None:
    """Apply the recorded effect of the transaction `raw` instead of running it, if `known` has one
    for these very bytes, `verified` holds its signatures and it holds on `state`: its `Tx`. Else
    None, and `state` is unchanged: the transaction must run."""
    if known is None or verified is None:
        return None
    tx = verified.decoded(raw)
    if tx is None or tx.hash not in verified:
        return None
    return tx if apply_recorded_effect(state, tx, known) else None


def apply_recorded_effect(state: State, tx: Tx, known: KnownEffects) -> bool:
    """For a `tx` whose signatures this node verified: apply its effect as recorded in `known` if
    there is one for these very bytes and it holds on `state`; whether it did (else `state` is
    unchanged and the transaction must run)."""
    effect = known.get(tx.hash)
    return effect is not None and effect.tx.raw == tx.raw and apply_effect_if_holds(state, effect)


def check_block_tx_bytes(
    raws: Sequence[bytes], verified: SignatureCache | None, chain_id: str
) -> tuple[list[Tx], tuple[int, Rejected] | None]:
    """`check_tx_bytes` of a block's transactions in order, up to the first that fails: their `Tx`s,
    and that failure (its index and rejection) or None. `apply_block` checks them all before any
    runs: the same outcome as checking each just before it runs, since these checks read no state,
    and signatures checked one after another run faster than between other work (libsodium's
    tables stay in the processor's caches)."""
    txs: list[Tx] = []
    for index, raw in enumerate(raws):
        try:
            txs.append(check_tx_bytes(raw, verified, chain_id))
        except Rejected as exc:
            return txs, (index, detached(exc))
    return txs, None


def apply_block(state: State, block: BlockInput, verified: SignatureCache | None = None, known: KnownEffects | None = None) -> list[Tx]:
    """Apply a whole block to `state`. Raises Rejected if any part is invalid; the caller then
    drops `state`. Order: header and period openings, slashes, transactions in order.

    Transactions apply to `state` directly, with no overlay each: one rejection rejects the whole
    block, and `state` with it (LedgerDB.execute applies to a throwaway overlay of the head).
    With `known` and `verified`, a transaction whose signatures are in `verified` (checked before
    or by this block's first pass) and whose recorded effect holds has its recorded writes applied
    instead of running again (`apply_recorded_effect`): the same result, less work."""
    process_block_header(state, block)
    for address in block.slashes:
        process_slash(state, address)
    txs, failed = check_block_tx_bytes(block.txs, verified, state.get_params().chain_id)
    processors = TX_PROCESSORS
    # as in select_block_txs: a node's own records, used with its cache
    checked = verified if known is not None else None
    for index, tx in enumerate(txs):
        if checked is not None and tx.hash in checked and apply_recorded_effect(state, tx, known):  # type: ignore[arg-type]
            continue
        try:
            processors[tx.body["type"]](state, tx)
        except Rejected as exc:
            raise Rejected(Code.BLOCK_INVALID, f"transaction {index}: {exc.code.name}: {exc.message}") from None
    if failed is not None:  # the first transaction that fails, as if each were checked as it ran
        index, exc = failed
        raise Rejected(Code.BLOCK_INVALID, f"transaction {index}: {exc.code.name}: {exc.message}")
    check_conservation(state)
    return txs


def select_block_txs(
    state: State,
    block: BlockInput,
    candidates: Sequence[bytes],
    verified: SignatureCache | None = None,
    known: KnownEffects | None = None,
) -> tuple[BlockInput, list[Tx]]:
    """For a proposer: apply the header, then every candidate that still applies, in order, up to
    the block limit. Returns the block of the accepted transactions, applied to `state`.

    With `known` (and `verified`), a candidate whose recorded effect holds on the block's state so
    far has its recorded writes applied instead of running again (`apply_known_effect`). The result
    is the same as without `known` (property tests pin it)."""
    process_block_header(state, block)
    for address in block.slashes:
        process_slash(state, address)
    accepted_raw: list[bytes] = []
    txs: list[Tx] = []
    chain_id = state.get_params().chain_id
    for raw in candidates:
        if len(accepted_raw) >= MAX_TXS_PER_BLOCK:
            break
        recorded = apply_known_effect(state, raw, verified, known)
        if recorded is not None:
            accepted_raw.append(raw)
            txs.append(recorded)
            continue
        overlay = state.child()
        try:
            tx = process_tx(overlay, raw, verified, chain_id)
        except Rejected:
            continue
        overlay.merge_into_parent()
        accepted_raw.append(raw)
        txs.append(tx)
    check_conservation(state)
    return replace(block, txs=tuple(accepted_raw)), txs

"""cli.audit.replay: a stored chain replays clean; every kind of tampering is named by its height."""

from __future__ import annotations

import os

import pytest

from cli.audit.replay import Replayer, replay
from cli.audit.sources import StoreBlockSource
from consensus.block_store import BLOCK, CERTIFICATE, h8
from ledger.crypto import sha256
from tests.audit.chain import VALIDATORS, ChainBuilder, ListSource, audit_genesis, economy_chain, tampered
from tests.ledger.helpers import key, member_add_tx, signed_tx, transfer_tx


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    return economy_chain()


def test_an_honest_chain_replays_clean_and_matches_the_node(chain: ChainBuilder) -> None:
    result = replay(chain.source(), jobs=1)
    assert result.ok, result.divergence
    assert result.divergence is None
    head = chain.ledger.head
    assert (result.blocks, result.final_height) == (head.height, head.height)
    assert result.final_state_root == chain.ledger.state_root.hex()
    totals = chain.ledger.totals()
    assert result.supply["demurrage_collected"] == totals.demurrage_collected > 0
    assert result.supply["ubi_paid"] == totals.ubi_paid > 0
    assert result.txs == sum(len(s.txs) for s in chain.sources)
    assert result.evidence_checked == 1
    assert [s.validators for s in result.slashes] == [[key(VALIDATORS[3]).address.hex()]]
    assert result.slashes[0].amount == totals.slashed > 0
    # one snapshot per period that had blocks, ending at the head
    assert [p.period for p in result.periods] == sorted({p.period for p in result.periods})
    assert result.periods[-1].height == head.height
    assert sum(p.demurrage_collected for p in result.periods) == totals.demurrage_collected
    assert sum(p.ubi_paid for p in result.periods) == totals.ubi_paid


def test_the_outcome_is_the_same_with_one_or_two_processes(chain: ChainBuilder) -> None:
    one = replay(chain.source(), jobs=1)
    two = replay(chain.source(), jobs=2)
    assert one.to_json(timing=False) == two.to_json(timing=False)


def test_the_pools_workers_are_reaped_when_the_replay_returns(chain: ChainBuilder) -> None:
    """A caller that counts its children's CPU time (the replay benchmark) counts the pool's: each
    worker has exited and been waited for (once the pool was told to stop before its last blocks
    executed, and a later shutdown(wait=True) did not wait, so the workers were often still running)."""
    for _ in range(3):
        replayer = Replayer(chain.genesis, jobs=2)
        assert replayer.run(chain.source()).ok
        assert replayer.pool_pids
        for pid in replayer.pool_pids:
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # not a child any more: exited and reaped


class _NeverAnswered:
    """A pool task whose answer never comes (`done` is always False)."""

    def done(self) -> bool:
        return False


def test_reading_the_nodes_state_ahead_stops_when_it_is_all_read(chain: ChainBuilder) -> None:
    """The replay reads the node's state ahead while it waits for the pool; once all of it is read
    it returns to wait for the answer, instead of reading nothing again until it comes."""
    replayer = Replayer(chain.genesis, jobs=1)
    source = chain.source()
    replayer._node_state = source
    replayer._read_node_state_ahead(_NeverAnswered())  # type: ignore[arg-type]  # returns: all read
    entries = sum(1 for _ in source.stored_state())
    assert entries > 0 and len(replayer._node_read_ahead) == entries and replayer._node_read_all
    replayer._read_node_state_ahead(_NeverAnswered())  # type: ignore[arg-type]  # nothing left to read
    assert len(replayer._node_read_ahead) == entries


def test_a_forged_signature_is_named_the_same_way_with_one_or_two_processes() -> None:
    b = ChainBuilder(audit_genesis())
    b.add_block([transfer_tx(1, 2, 10, 0)])
    raw = transfer_tx(1, 2, 10, 1)
    forged = raw[:-1] + bytes([raw[-1] ^ 1])
    source = ListSource(b.genesis, [*b.sources, b.forged_block([forged])])
    outcomes = [replay(source, jobs=j).to_json(timing=False) for j in (1, 2)]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0]["divergence"]["height"] == 2
    assert outcomes[0]["divergence"]["check"] == "signature"


def test_the_main_process_rebuilds_each_checked_transaction_as_decode_tx_does() -> None:
    """With a pool, the replay rebuilds a transaction the pool checked from its wire bytes and the
    pool's hash, without the form checks (`ledger.tx.trusted_tx`): it must be the `Tx` that `decode_tx` gives."""
    from ledger.tx import trusted_tx
    from ledger import decode_tx

    raws = [transfer_tx(1, 2, 10, 0), member_add_tx(5, 0), signed_tx("housing_apply", 1, 1, household=2, needs=0)]
    for raw in raws:
        tx = decode_tx(raw)
        rebuilt = trusted_tx(raw, tx.hash)
        for name in ("raw", "hash", "body_bytes", "body", "signatures"):
            assert getattr(rebuilt, name) == getattr(tx, name), name
            assert type(getattr(rebuilt, name)) is type(getattr(tx, name)), name


# tampering with the stored bytes ------------------------------------------------------------------------
def flip(store, key: bytes, at: int) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(store.get(key))
    data[at] ^= 0x01
    store.write_batch({key: bytes(data)})


def fresh_chain() -> ChainBuilder:
    return economy_chain()


@pytest.mark.parametrize("what", ["tx body", "tx signature", "state root field", "header time"])
def test_a_flipped_byte_in_a_stored_block_is_named_by_its_height(what: str) -> None:
    b = fresh_chain()
    height = 5
    data = b.store.get(BLOCK + h8(height))
    raw = b.sources[height - 1].txs[0]
    at = {
        "tx body": data.find(raw) + 10,
        "tx signature": data.find(raw) + len(raw) - 1,
        "state root field": data.find(b.sources[height - 1].header.state_root) + 3,
        "header time": data.find(b"time_ms") + 9,
    }[what]
    flip(b.store, BLOCK + h8(height), at)
    result = replay(b.source(), jobs=2)
    assert not result.ok
    assert result.divergence is not None and result.divergence.height == height, result.divergence
    assert result.blocks == height - 1
    assert result.final_height == height - 1


def test_a_flipped_byte_in_a_stored_certificate_signature_is_named() -> None:
    b = fresh_chain()
    signature = b.sources[3].certificate.signatures[1].signature
    flip(b.store, CERTIFICATE + h8(4), b.store.get(CERTIFICATE + h8(4)).find(signature) + 7)
    result = replay(b.source(), jobs=2)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (4, "certificate")
    assert "bad precommit signature" in result.divergence.detail


def test_a_missing_block_is_named() -> None:
    b = fresh_chain()
    b.store.write_batch({BLOCK + h8(6): None})
    result = replay(StoreBlockSource(b.store, b.genesis), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (6, "block unreadable")


def test_an_unreadable_stored_block_is_named_the_same_way_with_one_or_two_processes() -> None:
    """From a store the pool decodes the blocks: what it cannot decode comes back as the same divergence."""
    b = fresh_chain()
    flip(b.store, BLOCK + h8(3), b.store.get(BLOCK + h8(3)).find(b.sources[2].txs[0]) + 10)
    b.store.write_batch({BLOCK + h8(6): None})
    outcomes = [replay(b.source(), jobs=j).to_json(timing=False) for j in (1, 2)]
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0]["divergence"]["height"], outcomes[0]["divergence"]["check"]) == (3, "block unreadable")
    assert outcomes[0]["blocks"] == 2


# blocks that validators certified but that are wrong ------------------------------------------------------
def test_a_certified_wrong_state_root_is_named() -> None:
    b = ChainBuilder(audit_genesis())
    b.add_block([transfer_tx(1, 2, 10, 0)])
    bad = b.forged_block([transfer_tx(1, 2, 10, 1)], state_root=sha256(b"not the state"))
    result = replay(ListSource(b.genesis, [*b.sources, bad]), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (2, "state root")


def test_a_certified_invalid_transaction_is_named() -> None:
    b = ChainBuilder(audit_genesis())
    b.add_block([transfer_tx(1, 2, 10, 0)])
    overspend = transfer_tx(1, 2, 10**12, 1)
    result = replay(ListSource(b.genesis, [*b.sources, b.forged_block([overspend])]), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (2, "transition")
    assert "INSUFFICIENT_FUNDS" in result.divergence.detail


def test_a_certificate_short_of_the_quorum_is_named() -> None:
    b = ChainBuilder(audit_genesis())
    b.add_block()
    block = b.forged_block()
    two = [key(i).address for i in sorted(VALIDATORS, key=lambda i: key(i).address)[:2]]
    weak = tampered(block, certificate=b.certify(block.header.hash, 2, sorted(two)))
    result = replay(ListSource(b.genesis, [*b.sources, weak]), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (2, "certificate")
    assert "below the quorum" in result.divergence.detail


def test_a_certificate_by_outsiders_is_named() -> None:
    b = ChainBuilder(audit_genesis())
    block = b.forged_block()
    outsiders = sorted(key(i).address for i in (30, 31, 32, 33))
    forged = tampered(block, certificate=b.certify(block.header.hash, 1, outsiders))
    result = replay(ListSource(b.genesis, [forged]), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (1, "certificate")
    assert "not in the validator set" in result.divergence.detail


def test_a_slashed_validator_may_no_longer_sign() -> None:
    """After a slash at height 2 the set of height 3 has three validators; a header naming the old set is refused."""
    b = ChainBuilder(audit_genesis())
    b.add_block()
    b.add_block([], evidence=(b.equivocation(VALIDATORS[0], 1),))
    stale = b.sources[0].header.validators_hash
    block = b.forged_block()
    header = tampered(block, header=block.header.__class__(**{**block.header.to_wire(), "validators_hash": stale}))
    fixed = tampered(header, certificate=b.certify(header.header.hash, 3, [key(i).address for i in VALIDATORS]))
    result = replay(ListSource(b.genesis, [*b.sources, fixed]), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (3, "validator set")


def test_a_block_out_of_order_is_named() -> None:
    b = ChainBuilder(audit_genesis())
    b.add_block()
    b.add_block([signed_tx("transfer", 1, 0, to=key(2).address, amount=5)])
    result = replay(ListSource(b.genesis, [b.sources[1], b.sources[0]]), jobs=1)
    assert result.divergence is not None and result.divergence.height == 1


def test_the_replays_own_sums_catch_a_ledger_that_mints(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ledger bug that at height 2 credits one unit more than it debits, Totals untouched: the
    ledger's own conservation check (on Totals) passes, the replay's sum of balances does not."""
    from dataclasses import replace as dc_replace

    from ledger import transition

    honest = transition.TX_PROCESSORS["transfer"]

    def minting(state, tx):  # type: ignore[no-untyped-def]
        honest(state, tx)
        if state.get_head().height != 2:
            return
        to = tx.body["to"]
        account = state.get_account(to)
        state.set_account(to, dc_replace(account, balance=account.balance + 1))

    b = ChainBuilder(audit_genesis())
    b.add_block([transfer_tx(1, 2, 10, 0)])
    monkeypatch.setitem(transition.TX_PROCESSORS, "transfer", minting)
    b.add_block([transfer_tx(1, 2, 10, 1)])  # the validators ran the same bug: the root agrees
    result = replay(ListSource(b.genesis, b.sources), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (2, "conservation")
    assert "account balances add up to" in result.divergence.detail


# tampering with the node's own state ---------------------------------------------------------------------
def test_a_flipped_byte_in_the_nodes_stored_state_is_named() -> None:
    from ledger.state import STATE_PREFIX

    b = fresh_chain()
    entry = STATE_PREFIX + b"a" + key(2).address
    flip(b.store, entry, 2)
    result = replay(b.source(), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (b.ledger.head.height, "node state")
    assert (b"a" + key(2).address).hex() in result.divergence.detail
    assert result.blocks == b.ledger.head.height  # every block verified; the node's state did not


def test_an_entry_added_to_the_nodes_state_is_named() -> None:
    from ledger.state import STATE_PREFIX

    b = fresh_chain()
    b.store.write_batch({STATE_PREFIX + b"a" + bytes(32): b.store.get(STATE_PREFIX + b"a" + key(2).address)})
    result = replay(b.source(), jobs=1)
    assert result.divergence is not None and result.divergence.check == "node state"
    assert "an entry the replay does not" in result.divergence.detail


def test_a_flipped_byte_in_the_nodes_recorded_root_is_named_by_its_height() -> None:
    from ledger.ledger_db import root_key

    b = fresh_chain()
    flip(b.store, root_key(5), 0)
    result = replay(b.source(), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (5, "node state")


def test_a_source_that_ends_before_its_head_is_named() -> None:
    b = ChainBuilder(audit_genesis())
    b.add_block()
    b.add_block()

    class Short(ListSource):
        def head_height(self) -> int:
            return 3

    result = replay(Short(b.genesis, b.sources), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (3, "block unreadable")


def test_evidence_committed_twice_is_named() -> None:
    b = ChainBuilder(audit_genesis())
    b.add_block()
    evidence = b.equivocation(VALIDATORS[0], 1)
    b.add_block([], evidence=(evidence,))
    again = b.forged_block(evidence=(evidence,))
    result = replay(ListSource(b.genesis, [*b.sources, again]), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check, result.divergence.detail) == (3, "evidence", "evidence committed twice")


def test_evidence_against_a_non_validator_is_named() -> None:
    b = ChainBuilder(audit_genesis())
    b.add_block()
    bogus = b.forged_block(evidence=(b.equivocation(40, 1),))
    result = replay(ListSource(b.genesis, [*b.sources, bogus]), jobs=1)
    assert result.divergence is not None
    assert (result.divergence.height, result.divergence.check) == (2, "evidence")
    assert "not in the validator set" in result.divergence.detail


def test_over_rpc_evidence_is_checked_whole(chain: ChainBuilder) -> None:
    """The RPC serves evidence with its bytes: replay over it verifies the evidence, and a forged
    signature in it is named at its height."""
    from cli.audit.sources import RpcBlockSource
    from tests.audit.chain import FakeRpc

    result = replay(RpcBlockSource(FakeRpc(chain), chain.genesis), jobs=1)
    assert result.ok, result.divergence
    assert result.evidence_checked == 1

    fake = FakeRpc(chain)
    height = next(s.height for s in chain.sources if s.evidence)

    def forge(answer):  # type: ignore[no-untyped-def]
        if answer and answer["header"]["height"] == height:
            e = answer["evidence"][0]
            raw = bytearray(bytes.fromhex(e["bytes"]))
            raw[-3] ^= 0x01  # inside the second vote's signature
            answer = {**answer, "evidence": [{**e, "bytes": raw.hex()}]}
        return answer

    fake.tamper["block"] = forge
    forged = replay(RpcBlockSource(fake, chain.genesis), jobs=1)
    assert not forged.ok and forged.divergence.height == height

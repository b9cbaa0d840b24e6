"""cli.audit.prove: the chain of trust from the validator set down to an account entry."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cli.audit.prove import ProofRejected, fetch_and_verify, trusted_set_of
from tests.audit.chain import COIN, ChainBuilder, FakeRpc, audit_genesis, economy_chain
from tests.ledger.helpers import community_genesis, key


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    return economy_chain()


def test_an_entry_is_proven_from_the_genesis_validators(chain: ChainBuilder) -> None:
    proven = fetch_and_verify(FakeRpc(chain), key(1).address, None, chain.genesis)
    stored = chain.ledger.get_record(b"a" + key(1).address)
    assert proven.account == {"balance": stored.balance, "nonce": stored.nonce, "settled_period": stored.settled_period}
    assert proven.height == chain.ledger.head.height
    assert proven.state_root == chain.ledger.state_root.hex()
    assert proven.trust == "genesis"
    assert proven.signed_power == proven.set_power == 30  # three validators after the slash


def test_an_absent_account_is_proven_absent(chain: ChainBuilder) -> None:
    proven = fetch_and_verify(FakeRpc(chain), key(77).address, None, chain.genesis)
    assert proven.account is None


def test_without_genesis_the_nodes_set_is_the_trust_root(chain: ChainBuilder) -> None:
    assert fetch_and_verify(FakeRpc(chain), key(1).address, None, None).trust == "node"


def reject(chain: ChainBuilder, method: str, change: Any, genesis: Any = "default") -> str:
    rpc = FakeRpc(chain)

    def hook(answer: Any) -> Any:
        answer = copy.deepcopy(answer)
        change(answer)
        return answer

    rpc.tamper[method] = hook
    with pytest.raises(ProofRejected) as info:
        fetch_and_verify(rpc, key(1).address, None, chain.genesis if genesis == "default" else genesis)
    return str(info.value)


def flip_hex(text: str, at: int = 5) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


def test_a_wrong_value_is_rejected(chain: ChainBuilder) -> None:
    assert "wrong proof" in reject(chain, "proof", lambda a: a.update(value=flip_hex(a["value"], 8)))


def test_a_wrong_sibling_is_rejected(chain: ChainBuilder) -> None:
    def change(a: Any) -> None:
        a["proof"]["siblings"][2][4] = flip_hex(a["proof"]["siblings"][2][4])

    assert "wrong proof" in reject(chain, "proof", change)


def test_a_proof_against_another_root_is_rejected(chain: ChainBuilder) -> None:
    assert "another state root" in reject(chain, "proof", lambda a: a.update(state_root=flip_hex(a["state_root"])))


def test_a_header_with_another_root_breaks_the_certificate(chain: ChainBuilder) -> None:
    def change(a: Any) -> None:
        a["header"]["state_root"] = flip_hex(a["header"]["state_root"])

    assert "forged certificate" in reject(chain, "block", change)


def test_a_forged_certificate_signature_is_rejected(chain: ChainBuilder) -> None:
    def change(a: Any) -> None:
        a["commit"]["signatures"][0]["signature"] = flip_hex(a["commit"]["signatures"][0]["signature"])

    assert "forged certificate" in reject(chain, "block", change)


def test_a_certificate_from_an_invented_validator_set_is_rejected() -> None:
    """A node serving a whole other chain of the same chain id: its own validators, headers naming
    them, certificates they signed, proofs that verify. The genesis validators are the trust root."""
    impostor = ChainBuilder(community_genesis(units=(("a", 2),), validators={i: 10 * COIN for i in range(60, 64)}))
    impostor.add_block()
    with pytest.raises(ProofRejected, match="not a genesis validator"):
        fetch_and_verify(FakeRpc(impostor), key(1).address, None, audit_genesis())
    assert fetch_and_verify(FakeRpc(impostor), key(1).address, None, None).trust == "node"


def test_the_trusted_set_is_the_genesis_validators() -> None:
    genesis = audit_genesis()
    assert len(trusted_set_of(genesis)) == 4

"""Scenario 5 of issue 7: a validator started with the devnet-only `--byzantine-equivocate` flag signs
conflicting prevotes; the evidence is committed, its stake is slashed into the commons pool, it
leaves the validator set, and the chain goes on."""

from __future__ import annotations

from typing import Any

import pytest

from devnet.genesis_builder import DevnetEconomy
from devnet.processes import poll_until
from ledger.constants import RATE_SCALE
from tests.e2e.conftest import MakeDevnet
from tests.e2e.helpers import assert_one_chain, call, check_conservation, height, wait_for_growth

pytestmark = pytest.mark.timeout(120)

EVIDENCE_TIMEOUT_S = 60.0
HONEST = ["v1", "v2", "v3"]


def test_an_equivocating_validator_is_slashed_and_removed_and_the_chain_goes_on(make_devnet: MakeDevnet) -> None:
    net = make_devnet(start=False)
    for name in net.manifest.names:
        net.start(name, byzantine=name == "v4", wait=False)
    for name in net.manifest.names:
        net.wait_answering(name)
    v1 = net.manifest.validator("v1")
    byzantine = net.manifest.validator("v4")

    found: list[tuple[int, dict[str, Any]]] = []
    scanned = 0

    def evidence_committed() -> bool:
        nonlocal scanned
        for h in range(scanned + 1, height(v1) + 1):
            block = call(v1, "block", height=h)
            found.extend((h, e) for e in block["evidence"])
            scanned = h
        return bool(found)

    poll_until(evidence_committed, EVIDENCE_TIMEOUT_S, "equivocation evidence in a block", interval_s=0.2)
    evidence_height, evidence = found[0]
    assert evidence["validator"] == byzantine.node_id
    assert evidence["kind"] == "prevote"

    # It leaves the set from the next height on; the three honest validators go on without it.
    wait_for_growth(net, HONEST, 3, 45)
    validators = call(v1, "validators")["validators"]
    assert sorted(v["name"] for v in validators) == HONEST
    before = call(v1, "validators", height=evidence_height)["validators"]
    assert byzantine.node_id in {v["address"] for v in before}

    economy = DevnetEconomy()
    slashed = economy.validator_stake * economy.slash_fraction // RATE_SCALE
    supply = call(v1, "supply")
    check_conservation(supply)
    assert supply["slashed"] == slashed
    assert supply["bonded"] == economy.validator_stake * len(HONEST)
    # The rest of its stake went back to its account (less any demurrage since).
    account = call(v1, "account", address=byzantine.node_id)
    assert economy.validator_stake - slashed >= account["balance"] > (economy.validator_stake - slashed) // 2
    assert_one_chain(net, HONEST)

"""Scenarios 2, 3 and 4 of issue 7, as data (devnet/scenarios.py): crashes and partitions of a
four-validator devnet, checked over RPC; each scenario on a fresh devnet."""

from __future__ import annotations

import pytest

from devnet.scenarios import SCENARIOS, Scenario, run_scenario
from tests.e2e.conftest import MakeDevnet

pytestmark = pytest.mark.timeout(150)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault_scenario(make_devnet: MakeDevnet, scenario: Scenario) -> None:
    net = make_devnet(validators=scenario.validators)
    run_scenario(net, scenario, print)

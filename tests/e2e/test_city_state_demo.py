"""The devnet is ready to use with the CLI: its demo keyring signs council, housing and quota actions
of the genesis' city-state nodes, sent to one validator and visible on another."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.e2e.conftest import MakeDevnet
from devnet.processes import poll_until
from tests.e2e.helpers import call, hearth, hearth_committed

pytestmark = pytest.mark.timeout(120)

PERIOD_SECONDS = 5


def test_council_housing_and_quota_actions_with_the_demo_keys(make_devnet: MakeDevnet) -> None:
    net = make_devnet(period_seconds=PERIOD_SECONDS)
    new_key = CliRunner().invoke(main, ["keys", "new", "erin", "--insecure-unencrypted"], env=net.manifest.environment())
    assert new_key.exit_code == 0, new_key.output

    # The north council registers erin with two of its three keys.
    hearth_committed(net, "member", "register", "erin", "--node", "north", "--signer", "north-council-1", "--signer", "north-council-3", via="v1", read_on="v4")
    erin = hearth(net, "member", "show", "erin", via="v4")
    assert erin["node"] == "north"

    # Alice applies for a home in north; a genesis unit is allocated in the same transaction.
    hearth_committed(net, "housing", "apply", "--from", "alice", "--household", "2", via="v2", read_on="v4")
    alice = hearth(net, "member", "show", "alice", via="v4")
    assert alice["residence"]["node"] == "north" and alice["residence"]["role"] == "holder"

    # The water provider records carol's consumption in south. Genesis members' first allowance is
    # for period 1 (specs/membership.md); start at a fresh period so the checks share one.
    v1 = net.manifest.validator("v1")
    fresh = max(1, call(v1, "status")["period"] + 1)
    poll_until(lambda: call(v1, "status")["period"] >= fresh, 3 * PERIOD_SECONDS, f"period {fresh}")
    hearth_committed(net, "quota", "consume", "--provider", "water-provider", "--member", "carol", "--resource", "water", "--amount", "250", via="v3", read_on="v4")
    quota = hearth(net, "quota", "show", "carol", "water", via="v4")
    assert quota["period"] == fresh, "the checks straddled a period; make PERIOD_SECONDS longer"
    assert quota["consumed"] == 250 and quota["allowance"] > 0

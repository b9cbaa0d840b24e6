"""Bonding and unbonding a validator with the generic `hearth tx build|sign|submit` flow
(specs/consensus.md, "Stake and slashing": the offline multi-party signing commands)."""

from __future__ import annotations

import json
from pathlib import Path

from cli.errors import ExitCode
from tests.cli.conftest import Hearth, seed_file


def test_bond_signed_by_the_new_validator_and_the_set_then_unbond(hearth: Hearth, bob: str, tmp_path: Path) -> None:
    # rpc_genesis: key 3 is the only validator (10 coins); bob (key 2) holds 20 coins
    assert hearth("keys", "import", "v3", "--seed-file", str(seed_file(tmp_path, 3)), "--insecure-unencrypted").exit_code == 0
    bond = tmp_path / "bond.json"
    built = hearth("tx", "build", "validator_bond", "--from", "bob", "--set", "validator=bob", "--set", "stake=5000000", "--set", "name=bob", "--out", str(bond))
    assert built.exit_code == 0, built.output
    assert json.loads(bond.read_text())["decoded"]["name"] == "bob"
    assert hearth("tx", "sign", str(bond), "--key", "bob").exit_code == 0
    refused = hearth("tx", "submit", str(bond))  # no validator consented
    assert refused.exit_code == ExitCode.REFUSED and "VALIDATOR_QUORUM" in refused.stderr
    assert hearth("tx", "sign", str(bond), "--key", "v3").exit_code == 0
    submitted = hearth("tx", "submit", str(bond), "--wait", "--json")
    assert submitted.exit_code == 0, submitted.output
    assert json.loads(submitted.stdout)["committed"] is True
    unbond = tmp_path / "unbond.json"
    assert hearth("tx", "build", "validator_unbond", "--from", "bob", "--out", str(unbond)).exit_code == 0
    assert hearth("tx", "sign", str(unbond), "--key", "bob").exit_code == 0
    done = hearth("tx", "submit", str(unbond), "--wait", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["committed"] is True

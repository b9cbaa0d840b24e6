"""`hearth member`, `hearth quota`, `hearth housing`, `hearth chain node` against a two-node community."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.errors import ExitCode
from cli.main import main
from ledger.crypto import sha256
from tests.cli.conftest import seed_file
from tests.ledger.helpers import NODE_COUNCILS, PERIOD_MS, WATER_PROVIDER, community_genesis, council_address, key
from tests.rpc.fake_node import ServedNode

Run = Callable[..., Result]
KEYS = {"c1": NODE_COUNCILS["north"][0], "c2": NODE_COUNCILS["north"][1], "alice": 1, "bob": 2, "carol": 3, "dan": 4, "water": WATER_PROVIDER}


@pytest.fixture
def community() -> Iterator[ServedNode]:
    with ServedNode(community_genesis(units=())) as served:
        yield served


@pytest.fixture
def run(community: ServedNode, tmp_path: Path) -> Run:
    """`hearth ARGS...` with the keys above imported (unencrypted, to keep the tests quick)."""
    env = {"HEARTH_RPC": community.url, "HEARTH_HOME": str(tmp_path / "home")}

    def hearth(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    for name, i in KEYS.items():
        assert hearth("keys", "import", name, "--seed-file", str(seed_file(tmp_path, i)), "--insecure-unencrypted").exit_code == 0
    return hearth


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def test_council_registers_and_removes_members_and_members_leave(run: Run) -> None:
    ok(run("member", "register", "dan", "--node", "north", "--signer", "c1", "--signer", "c2", "--wait"))
    shown = json.loads(ok(run("member", "show", "dan", "--json")))
    assert shown["node"] == "north" and shown["address"] == key(4).address.hex()
    assert "north" in ok(run("member", "show", "dan"))
    alone = run("member", "remove", "carol", "--node", "north", "--signer", "c1")
    assert alone.exit_code == ExitCode.REFUSED and "BELOW_THRESHOLD (1303)" in alone.stderr
    stranger = run("member", "remove", "carol", "--node", "north", "--signer", "c1", "--signer", "alice")
    assert stranger.exit_code == ExitCode.REFUSED and "UNAUTHORIZED" in stranger.stderr
    assert "no signer given" in run("member", "remove", "carol", "--node", "north").stderr
    ok(run("member", "remove", "carol", "--node", "north", "--signer", "c1", "--signer", "c2"))
    ok(run("member", "leave", "dan", "--wait"))
    assert "not a member" in ok(run("member", "show", "dan"))
    assert json.loads(ok(run("member", "show", "carol", "--json"))) is None
    node = json.loads(ok(run("chain", "node", "north", "--json")))
    assert node["member_count"] == 2 and node["council"]["address"] == council_address("north").hex()
    assert "2 of 3 keys" in ok(run("chain", "node", "north"))


def test_quota_show_consume_and_trade(community: ServedNode, run: Run) -> None:
    community.run(lambda: community.node.commit_block(time_ms=PERIOD_MS))  # genesis members get quota from period 1
    before = json.loads(ok(run("quota", "show", "alice", "water", "--json")))
    assert before["left"] == before["allowance"] == 333
    assert "333 litre" in ok(run("quota", "show", "alice", "water"))
    ok(run("quota", "consume", "--provider", "water", "--member", "alice", "--resource", "water", "--amount", "10"))
    ok(run("quota", "trade", "--from", "alice", "--to", "bob", "--resource", "water", "--amount", "5"))
    after = json.loads(ok(run("quota", "show", "alice", "water", "--json")))
    assert (after["consumed"], after["holding"], after["left"]) == (10, 328, 318)
    unpaired = run("quota", "trade", "--from", "alice", "--to", "bob", "--resource", "water", "--amount", "5", "--price", "1")
    assert unpaired.exit_code == ExitCode.USER_ERROR and "buyer's signature" in unpaired.stderr
    ok(run("quota", "trade", "--from", "alice", "--to", "bob", "--resource", "water", "--amount", "5", "--price", "1", "--cosign", "bob", "--wait"))
    assert json.loads(ok(run("quota", "show", "bob", "water", "--json")))["holding"] == 343
    too_much = run("quota", "consume", "--provider", "water", "--member", "alice", "--resource", "water", "--amount", "1000")
    assert too_much.exit_code == ExitCode.REFUSED and "QUOTA_EXCEEDED" in too_much.stderr
    assert "no quota" in ok(run("quota", "show", "dan", "water"))


def test_housing_apply_allocate_modify_release(run: Run, tmp_path: Path) -> None:
    ok(run("housing", "apply", "--from", "alice", "--household", "2", "--needs", "children"))
    ok(run("housing", "apply", "--from", "bob", "--household", "1"))
    queue = json.loads(ok(run("housing", "queue", "north", "--json")))
    assert [a["address"] for a in queue["queue"]] == [key(1).address.hex(), key(2).address.hex()]
    assert "2 waiting, 0 vacant" in ok(run("housing", "queue", "north"))
    bad_flag = run("housing", "apply", "--from", "carol", "--household", "1", "--needs", "pets")
    assert bad_flag.exit_code == ExitCode.USER_ERROR and "disability, children, elderly" in bad_flag.stderr
    description = tmp_path / "unit-a.txt"
    description.write_text("Flat A: two rooms, ground floor.\n")
    ok(run("housing", "add-unit", "--node", "north", "--unit", "a", "--capacity", "2", "--description", str(description), "--signer", "c1", "--signer", "c2"))
    right = json.loads(ok(run("housing", "show", "alice", "--json")))
    assert right["role"] == "holder" and right["unit"] == "a"
    unit = json.loads(ok(run("housing", "show", "--node", "north", "--unit", "a", "--json")))
    assert unit["attributes"] == sha256(description.read_bytes()).hex() and unit["right"]["holder"] == key(1).address.hex()
    ok(run("housing", "modify", "--from", "alice", "--kind", "extension", "--area-delta", "5"))
    shown = ok(run("housing", "show", "--node", "north", "--unit", "a"))
    assert "modified extension +5" in shown and "area change  +5" in shown
    not_holder = run("housing", "release", "--from", "carol")
    assert not_holder.exit_code == ExitCode.USER_ERROR and "holds no housing right" in not_holder.stderr
    ok(run("housing", "release", "--from", "alice", "--wait"))
    assert "holds no housing right" in ok(run("housing", "show", "alice"))
    assert json.loads(ok(run("housing", "show", "bob", "--json")))["unit"] == "a"  # the next in line got it
    assert "NOT_APPLIED" in run("housing", "withdraw", "--from", "carol").stderr
    assert "either --description" in run("housing", "add-unit", "--node", "north", "--unit", "b", "--capacity", "1", "--signer", "c1").stderr


def test_council_action_signed_offline_by_two_keys(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "register-dan.json"
    ok(run("tx", "build", "member_add", "--from", "council:north", "--set", "node=north", "--set", "member=dan", "--out", str(path)))
    assert json.loads(path.read_text())["decoded"]["from"] == council_address("north").hex()
    ok(run("tx", "sign", str(path), "--key", "c1"))
    one = run("tx", "submit", str(path))
    assert one.exit_code == ExitCode.REFUSED and "BELOW_THRESHOLD" in one.stderr
    ok(run("tx", "sign", str(path), "--key", "c2"))
    ok(run("tx", "submit", str(path), "--wait"))
    assert json.loads(ok(run("member", "show", "dan", "--json")))["node"] == "north"

"""`hearth status`, `hearth wallet ...`, `hearth chain ...` through CliRunner against the fake node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.errors import ExitCode
from cli.output import format_coins, parse_coins
from tests.cli.conftest import PASSWORD, Hearth
from tests.ledger.helpers import PERIOD_MS, key
from tests.rpc.conftest import COIN
from tests.rpc.fake_node import ServedNode


def as_json(result: object) -> object:
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    return json.loads(result.stdout)  # type: ignore[attr-defined]


def test_status(hearth: Hearth, served: ServedNode) -> None:
    human = hearth("status")
    assert human.exit_code == 0 and "hearth-test" in human.stdout and "height" in human.stdout
    machine = as_json(hearth("status", "--json"))
    assert machine["height"] == 0 and machine["state_root"] == served.node.ledger.state_root.hex()


def test_global_options_on_the_root_group(hearth: Hearth, served: ServedNode) -> None:
    """`hearth --rpc URL --json status`: the root group's options reach the command."""
    machine = as_json(hearth("--rpc", served.url, "--json", "status", env={"HEARTH_RPC": None}))  # type: ignore[dict-item]
    assert machine["state_root"] == served.node.ledger.state_root.hex()
    unreachable = hearth("--rpc", "http://127.0.0.1:9/", "status", env={"HEARTH_RPC": None})  # type: ignore[dict-item]
    assert unreachable.exit_code != 0 and "Traceback" not in unreachable.output


def test_balance_with_projection(hearth: Hearth, served: ServedNode, alice: str) -> None:
    served.run(lambda: served.node.commit_block(time_ms=2 * PERIOD_MS))
    human = hearth("wallet", "balance", "alice", "--periods", "5")
    assert human.exit_code == 0, human.output
    account = as_json(hearth("wallet", "balance", "alice", "--periods", "5", "--json"))
    assert account["address"] == alice and account["projection"]["periods"] == 5
    assert f"{format_coins(account['balance'])} coins" in human.stdout
    assert f"in 5 periods  {format_coins(account['projection']['balance'])} coins" in human.stdout
    assert "yes, since period 0" in human.stdout
    by_address = as_json(hearth("wallet", "balance", key(2).address.hex(), "--periods", "0", "--json"))
    assert by_address["balance"] == 19_602_000 and "projection" not in by_address  # two periods of 1% demurrage


def test_send_and_wait_then_history_and_tx_show(hearth: Hearth, alice: str, bob: str, password_file: Path) -> None:
    sent = hearth("wallet", "send", "--from", "alice", "--to", "bob", "--amount", "2.5", "--wait", "--password-file", str(password_file))
    assert sent.exit_code == 0, sent.output
    assert "committed" in sent.stdout and "block 1" in sent.stdout
    assert PASSWORD not in sent.output
    assert as_json(hearth("wallet", "balance", "bob", "--json"))["balance"] == 22_500_000
    back = as_json(hearth("wallet", "send", "--from", "bob", "--to", alice, "--amount", "0.000001", "--json"))
    assert back["committed"] is False
    history = hearth("wallet", "history", "bob")
    assert history.exit_code == 0
    lines = history.stdout.splitlines()
    assert "sent" in lines[1] and "0.000001" in lines[1] and "received" in lines[2] and "2.500000" in lines[2]
    entries = as_json(hearth("wallet", "history", "alice", "--json"))["txs"]
    assert [(e["height"], e["hash"]) for e in entries][0] == (2, back["hash"])
    shown = hearth("tx", "show", entries[1]["hash"])
    assert shown.exit_code == 0 and "2.500000 coins" in shown.stdout and "transfer" in shown.stdout
    assert as_json(hearth("tx", "show", back["hash"], "--json"))["body"]["amount"] == 1


def test_history_pages(hearth: Hearth, alice: str, bob: str) -> None:
    for _ in range(3):
        assert hearth("wallet", "send", "--from", "bob", "--to", "alice", "--amount", "1").exit_code == 0
    first = hearth("wallet", "history", "bob", "--limit", "2")
    more = [line for line in first.stdout.splitlines() if line.startswith("more: ")]
    assert more == ["more: --before 2.0"]
    rest = as_json(hearth("wallet", "history", "bob", "--limit", "2", "--before", "2.0", "--json"))["txs"]
    assert [e["height"] for e in rest] == [1]
    assert hearth("wallet", "history", "bob", "--before", "x").exit_code == ExitCode.USER_ERROR


def test_rejection_is_one_line_with_its_code(hearth: Hearth, bob: str) -> None:
    result = hearth("wallet", "send", "--from", "bob", "--to", key(1).address.hex(), "--amount", "1000")
    assert result.exit_code == ExitCode.REFUSED
    assert result.stderr.startswith("error: rejected: INSUFFICIENT_FUNDS (1013): ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    error = json.loads(hearth("wallet", "send", "--from", "bob", "--to", key(1).address.hex(), "--amount", "1000", "--json").stderr)["error"]
    assert error["exit_code"] == ExitCode.REFUSED and error["data"]["code"] == "INSUFFICIENT_FUNDS"


@pytest.mark.parametrize(("amount", "message"), [("0", "more than zero"), ("1.0000001", "at most 6 decimals"), ("-1", "not an amount"), ("abc", "not an amount")])
def test_bad_amounts(hearth: Hearth, bob: str, amount: str, message: str) -> None:
    result = hearth("wallet", "send", "--from", "bob", "--to", key(1).address.hex(), "--amount", amount)
    assert result.exit_code == ExitCode.USER_ERROR and message in result.stderr


def test_coins_round_trip() -> None:
    for units in (1, 999_999, 1_000_000, 12_345_678_901):
        assert parse_coins(format_coins(units)) == units
    assert format_coins(-1_500_000) == "-1.500000"


def test_wrong_password_and_unknown_key(hearth: Hearth, alice: str, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    result = hearth("wallet", "send", "--from", "alice", "--to", key(2).address.hex(), "--amount", "1", "--password-file", str(wrong))
    assert result.exit_code == ExitCode.USER_ERROR
    unknown = hearth("wallet", "send", "--from", "alice", "--to", "nobody", "--amount", "1", "--password-file", str(wrong))
    assert "neither an address" in unknown.stderr
    assert "wrong password" in result.stderr and result.stderr.count("\n") == 1
    prompt = hearth("wallet", "send", "--from", "alice", "--to", key(2).address.hex(), "--amount", "1", "--wait", input=PASSWORD + "\n")
    assert prompt.exit_code == 0, prompt.output
    assert PASSWORD not in prompt.output


def test_node_unreachable(hearth: Hearth) -> None:
    result = hearth("status", "--rpc", "http://127.0.0.1:9")
    assert result.exit_code == ExitCode.UNREACHABLE
    assert result.stderr.startswith("error: cannot reach the node at http://127.0.0.1:9") and result.stderr.count("\n") == 1
    assert "HEARTH_RPC" in result.stderr
    assert hearth("status", "--rpc", "ftp://x").exit_code == ExitCode.USER_ERROR


def test_proof_is_checked_locally(hearth: Hearth, alice: str, bob: str) -> None:
    assert hearth("wallet", "send", "--from", "bob", "--to", "alice", "--amount", "1").exit_code == 0
    result = hearth("wallet", "proof", "bob")
    assert result.exit_code == 0, result.output
    assert "verified" in result.stdout and "19.000000 coins, nonce 1" in result.stdout
    empty = as_json(hearth("wallet", "proof", "ab" * 32, "--json"))
    assert empty["verified"] is True and empty["value"] is None


def test_chain_commands(hearth: Hearth, served: ServedNode, bob: str) -> None:
    assert hearth("wallet", "send", "--from", "bob", "--to", key(1).address.hex(), "--amount", "1").exit_code == 0
    supply = as_json(hearth("chain", "supply", "--json"))
    assert supply["total"] == 180 * COIN
    assert "180.000000 coins" in hearth("chain", "supply").stdout
    params = hearth("chain", "params")
    assert "1% per period" in params.stdout and "10% of the commons pool" in params.stdout
    block = as_json(hearth("chain", "block", "1", "--json"))
    assert block["header"]["height"] == 1 and len(block["txs"]) == 1
    assert "transactions  1" in hearth("chain", "block").stdout
    missing = hearth("chain", "block", "7")
    assert missing.exit_code == ExitCode.USER_ERROR and "no block at height 7" in missing.stderr
    validators = hearth("chain", "validators")
    assert "v3" in validators.stdout and "power       10" in validators.stdout
    assert hearth("chain", "validators", "--height", "9").exit_code == ExitCode.USER_ERROR


def test_tx_show_unknown(hearth: Hearth) -> None:
    result = hearth("tx", "show", "00" * 32)
    assert result.exit_code == ExitCode.USER_ERROR and "may still be pending" in result.stderr
    bad = hearth("tx", "show", "zz")
    assert bad.exit_code == ExitCode.REFUSED and "invalid params" in bad.stderr

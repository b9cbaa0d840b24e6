"""`hearth tx build|sign|submit|show`: offline and multi-party signing through a transaction file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cli.errors import ExitCode
from consensus.node_services import TxIndexDisabled
from tests.cli.conftest import Hearth
from tests.ledger.helpers import key
from tests.rpc.fake_node import ServedNode

OFFLINE = {"HEARTH_RPC": "http://127.0.0.1:9"}  # nothing listens there


def test_build_sign_submit(hearth: Hearth, alice: str, bob: str, password_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "pay.json"
    built = hearth("tx", "build", "transfer", "--from", "alice", "--set", "to=bob", "--set", "amount=1500000", "--set", "memo=rent", "--out", str(path))
    assert built.exit_code == 0, built.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["chain_id"] == "hearth-test" and doc["signatures"] == []
    assert doc["decoded"] == {"type": "transfer", "chain": "hearth-test", "from": alice, "nonce": 0, "to": bob, "amount": 1_500_000, "memo": "rent"}
    unsigned = hearth("tx", "submit", str(path))
    assert unsigned.exit_code == ExitCode.USER_ERROR and "no signature" in unsigned.stderr
    signed = hearth("tx", "sign", str(path), "--key", "alice", "--password-file", str(password_file), env=OFFLINE)
    assert signed.exit_code == 0, signed.output
    assert [s["public_key"] for s in json.loads(path.read_text())["signatures"]] == [alice]
    submitted = hearth("tx", "submit", str(path), "--wait", "--json")
    assert submitted.exit_code == 0, submitted.output
    outcome = json.loads(submitted.stdout)
    assert outcome["committed"] is True and outcome["height"] == 1
    assert json.loads(hearth("tx", "show", outcome["hash"], "--json").stdout)["body"]["memo"] == "rent"


def test_build_offline_with_chain_id_and_nonce(hearth: Hearth, alice: str, password_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "offline.json"
    args = ["tx", "build", "transfer", "--from", alice, "--set", f"to={key(2).address.hex()}", "--set", "amount=1"]
    built = hearth(*args, "--chain-id", "hearth-test", "--nonce", "0", "--out", str(path), env=OFFLINE)
    assert built.exit_code == 0, built.output
    online = hearth(*args, "--nonce", "0", env=OFFLINE)
    assert online.exit_code == ExitCode.UNREACHABLE
    hearth("tx", "sign", str(path), "--key", "alice", "--password-file", str(password_file), env=OFFLINE)
    assert hearth("tx", "submit", str(path)).exit_code == 0


def test_several_signers_and_a_signed_copy(hearth: Hearth, alice: str, bob: str, password_file: Path, tmp_path: Path) -> None:
    path, copy = tmp_path / "two.json", tmp_path / "two-signed.json"
    assert hearth("tx", "build", "transfer", "--from", "bob", "--set", "to=alice", "--set", "amount=1", "--out", str(path)).exit_code == 0
    assert hearth("tx", "sign", str(path), "--key", "bob", "--out", str(copy)).exit_code == 0
    assert json.loads(path.read_text())["signatures"] == []
    result = hearth("tx", "sign", str(copy), "--key", "alice", "--password-file", str(password_file), "--json")
    assert sorted(json.loads(result.stdout)["signers"]) == sorted([alice, bob])
    refused = hearth("tx", "submit", str(copy))  # a transfer must be signed by its sender alone
    assert refused.exit_code == ExitCode.REFUSED and "UNAUTHORIZED (1008)" in refused.stderr


def test_tampering_after_signing_is_caught(hearth: Hearth, bob: str, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    hearth("tx", "build", "transfer", "--from", "bob", "--set", "to=" + key(1).address.hex(), "--set", "amount=1", "--out", str(path))
    hearth("tx", "sign", str(path), "--key", "bob")
    doc = json.loads(path.read_text())
    other = tmp_path / "other.json"
    hearth("tx", "build", "transfer", "--from", "bob", "--set", "to=" + key(1).address.hex(), "--set", "amount=999", "--out", str(other))
    doc["body"] = json.loads(other.read_text())["body"]
    path.write_text(json.dumps(doc))
    result = hearth("tx", "submit", str(path))
    assert result.exit_code == ExitCode.USER_ERROR and "does not verify" in result.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("[1, 2]")
    assert "not a Hearth transaction file" in hearth("tx", "submit", str(garbage)).stderr


def test_build_checks_type_and_fields(hearth: Hearth, bob: str) -> None:
    unknown_type = hearth("tx", "build", "mint", "--from", "bob")
    assert unknown_type.exit_code == ExitCode.USER_ERROR and "unknown transaction type 'mint'" in unknown_type.stderr
    unknown_field = hearth("tx", "build", "transfer", "--from", "bob", "--set", "colour=red")
    assert "transfer has no field 'colour'" in unknown_field.stderr
    missing = hearth("tx", "build", "transfer", "--from", "bob", "--set", "to=bob")
    assert "transfer needs amount" in missing.stderr
    bad_amount = hearth("tx", "build", "transfer", "--from", "bob", "--set", "to=bob", "--set", "amount=-5")
    assert bad_amount.exit_code == ExitCode.USER_ERROR and "--set amount=-5" in bad_amount.stderr
    no_equals = hearth("tx", "build", "transfer", "--from", "bob", "--set", "amount")
    assert "FIELD=VALUE" in no_equals.stderr
    assert hearth("tx", "sign", "/nonexistent", "--key", "bob").exit_code == ExitCode.USAGE


def test_a_node_without_transaction_indexes_is_named_as_such(hearth: Hearth, served: ServedNode, alice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a node with `tx_index.enabled` false (-32005), `tx show` and `wallet history` say so
    and point to another node, with the refusal's exit code."""

    def no_index(*args: object) -> None:
        raise TxIndexDisabled("this node keeps no transaction index")

    monkeypatch.setattr(served.node, "get_tx", no_index)
    monkeypatch.setattr(served.node, "get_account_txs", no_index)
    for args in (("tx", "show", "ab" * 32), ("wallet", "history", "alice")):
        result = hearth(*args)
        assert result.exit_code == ExitCode.REFUSED, result.output
        assert "keeps no transaction index" in result.output and "--rpc" in result.output

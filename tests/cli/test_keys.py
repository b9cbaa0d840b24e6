"""`hearth keys`: encrypted at rest, mode 0600, unreadable without the password, never printed."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cli.keystore import Keystore, KeystoreError
from tests.cli.conftest import PASSWORD, Hearth, seed_file
from tests.ledger.helpers import key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_key_is_encrypted_and_private(hearth: Hearth, home: Path, password_file: Path) -> None:
    result = hearth("keys", "new", "carol", "--password-file", str(password_file), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    path = home / "keys" / "carol.json"
    assert shown["name"] == "carol" and shown["encrypted"] is True and shown["path"] == str(path)
    assert mode(path) == 0o600 and mode(home / "keys") == 0o700
    doc = json.loads(path.read_text())
    assert doc["address"] == shown["address"] and doc["crypto"]["kdf"] == "argon2id"
    assert PASSWORD not in path.read_text() and PASSWORD not in result.output
    keystore = Keystore(home)
    with pytest.raises(KeystoreError, match="wrong password"):
        keystore.load("carol", "not the password")
    with pytest.raises(KeystoreError, match="needs its password"):
        keystore.load("carol", None)
    seed = keystore.load("carol", PASSWORD).seed
    assert seed.hex() not in path.read_text()
    assert keystore.load("carol", PASSWORD).address.hex() == shown["address"]


def test_new_key_from_prompt_asks_twice(hearth: Hearth, home: Path) -> None:
    result = hearth("keys", "new", "dave", input="pw1\npw1\n")
    assert result.exit_code == 0, result.output
    assert "pw1" not in result.output
    assert Keystore(home).load("dave", "pw1").address.hex() in result.stdout
    mismatch = hearth("keys", "new", "erin", input="pw1\npw2\npw3\npw3\n")
    assert mismatch.exit_code == 0 and Keystore(home).load("erin", "pw3")


def test_new_key_refuses_an_existing_name_a_bad_name_and_an_empty_password(hearth: Hearth, password_file: Path, tmp_path: Path) -> None:
    assert hearth("keys", "new", "carol", "--password-file", str(password_file)).exit_code == 0
    again = hearth("keys", "new", "carol", "--password-file", str(password_file))
    assert again.exit_code == 1 and again.stderr.startswith("error: ") and "already exists" in again.stderr
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.output
    bad = hearth("keys", "new", "../evil", "--password-file", str(password_file))
    assert bad.exit_code == 1 and "not a key name" in bad.stderr
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "password is empty" in hearth("keys", "new", "frank", "--password-file", str(empty)).stderr


def test_insecure_key_says_so_loudly(hearth: Hearth, home: Path) -> None:
    result = hearth("keys", "new", "demo", "--insecure-unencrypted")
    assert result.exit_code == 0
    assert "UNENCRYPTED" in result.stderr and "WARNING" in result.stderr
    path = home / "keys" / "demo.json"
    assert mode(path) == 0o600
    assert "UNENCRYPTED" in json.loads(path.read_text())["warning"]
    assert "UNENCRYPTED" in hearth("keys", "list").stdout
    assert Keystore(home).load("demo", None)


def test_list_and_show(hearth: Hearth, alice: str, bob: str) -> None:
    listed = json.loads(hearth("keys", "list", "--json").stdout)
    assert [(k["name"], k["address"], k["encrypted"]) for k in listed] == [("alice", alice, True), ("bob", bob, False)]
    shown = hearth("keys", "show", "alice")
    assert shown.exit_code == 0 and alice in shown.stdout
    missing = hearth("keys", "show", "zed")
    assert missing.exit_code == 1 and "no key named 'zed'" in missing.stderr


def test_list_with_no_keys(hearth: Hearth) -> None:
    result = hearth("keys", "list")
    assert result.exit_code == 0 and "no keys" in result.stdout


def test_export_and_import_keep_the_key_sealed(hearth: Hearth, alice: str, home: Path, tmp_path: Path, password_file: Path) -> None:
    exported = tmp_path / "alice.key"
    result = hearth("keys", "export", "alice", "--out", str(exported))
    assert result.exit_code == 0 and mode(exported) == 0o600
    assert key(1).seed.hex() not in exported.read_text()
    to_stdout = hearth("keys", "export", "alice")
    assert json.loads(to_stdout.stdout)["address"] == alice
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    refused = hearth("keys", "import", "alice2", str(exported), "--password-file", str(wrong))
    assert refused.exit_code == 1 and "wrong password" in refused.stderr
    assert not (home / "keys" / "alice2.json").exists()
    imported = hearth("keys", "import", "alice2", str(exported), "--password-file", str(password_file), "--json")
    assert imported.exit_code == 0 and json.loads(imported.stdout)["address"] == alice
    assert Keystore(home).load("alice2", PASSWORD).seed == key(1).seed
    assert mode(home / "keys" / "alice2.json") == 0o600


def test_import_refuses_what_is_not_a_key(hearth: Hearth, tmp_path: Path, password_file: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text('{"hello": 1}')
    result = hearth("keys", "import", "x", str(junk), "--password-file", str(password_file))
    assert result.exit_code == 1 and "not a Hearth key file" in result.stderr
    bad_seed = tmp_path / "seed"
    bad_seed.write_text("abcd\n")
    result = hearth("keys", "import", "x", "--seed-file", str(bad_seed), "--password-file", str(password_file))
    assert result.exit_code == 1 and "64 hex characters" in result.stderr
    neither = hearth("keys", "import", "x")
    assert neither.exit_code == 1 and "either" in neither.stderr


def test_tampered_address_is_caught(hearth: Hearth, alice: str, home: Path) -> None:
    path = home / "keys" / "alice.json"
    doc = json.loads(path.read_text())
    doc["address"] = key(2).address.hex()
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError, match="does not match"):
        Keystore(home).load("alice", PASSWORD)


def test_crafted_kdf_costs_are_refused(hearth: Hearth, alice: str, home: Path) -> None:
    path = home / "keys" / "alice.json"
    doc = json.loads(path.read_text())
    doc["crypto"]["memlimit"] = 1 << 40
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError, match="out of range"):
        Keystore(home).load("alice", PASSWORD)


def test_seed_import_of_the_same_key_twice_under_two_names(hearth: Hearth, tmp_path: Path) -> None:
    seed = seed_file(tmp_path, 5)
    assert hearth("keys", "import", "a", "--seed-file", str(seed), "--insecure-unencrypted").exit_code == 0
    assert hearth("keys", "import", "b", "--seed-file", str(seed), "--insecure-unencrypted").exit_code == 0
    listed = json.loads(hearth("keys", "list", "--json").stdout)
    assert {k["address"] for k in listed} == {key(5).address.hex()}

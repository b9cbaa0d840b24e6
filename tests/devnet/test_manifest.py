"""devnet/manifest.py: devnet.json round-trips, says the keys are unencrypted, and names errors clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devnet.manifest import UNENCRYPTED_KEYS_WARNING, Manifest, ManifestError, ValidatorEntry


def _manifest(directory: Path) -> Manifest:
    return Manifest(
        chain_id="hearth-devnet-1",
        directory=str(directory),
        keyring=str(directory / "keyring"),
        keys={"members": ("alice", "bob")},
        validators=(
            ValidatorEntry("v1", "aa" * 32, str(directory / "v1"), "http://127.0.0.1:20001", "127.0.0.1:20000"),
            ValidatorEntry("v2", "bb" * 32, str(directory / "v2"), "http://127.0.0.1:20003", "127.0.0.1:20002", pid=42),
        ),
    )


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path).with_pid("v1", 7).with_blocked({"v1": ("v2",), "v2": ("v1",)})
    manifest.save()
    assert Manifest.load(tmp_path) == manifest


def test_the_file_says_the_keys_are_unencrypted_first(tmp_path: Path) -> None:
    _manifest(tmp_path).save()
    text = (tmp_path / "devnet.json").read_text()
    doc = json.loads(text)
    assert next(iter(doc)) == "warning"
    assert doc["warning"] == UNENCRYPTED_KEYS_WARNING and "UNENCRYPTED" in doc["warning"]
    assert doc["chain_id"] == "hearth-devnet-1"
    assert [v["pid"] for v in doc["validators"]] == [None, 42]


def test_unknown_validator_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="v1, v2"):
        _manifest(tmp_path).validator("v9")


def test_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no devnet"):
        Manifest.load(tmp_path)
    (tmp_path / "devnet.json").write_text('{"version": 1, "validators": 3}')
    with pytest.raises(ManifestError, match="malformed"):
        Manifest.load(tmp_path)


def test_environment_points_the_cli_at_the_keyring_and_a_validator(tmp_path: Path) -> None:
    m = _manifest(tmp_path)
    assert m.environment() == {"HEARTH_HOME": str(tmp_path / "keyring"), "HEARTH_RPC": "http://127.0.0.1:20001"}
    assert m.environment("v2")["HEARTH_RPC"] == "http://127.0.0.1:20003"

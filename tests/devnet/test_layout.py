"""devnet/layout.py: homes, genesis, keyring and manifest written consistently, without starting anything."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cli.keystore import Keystore
from consensus.config import NodeHome, parse_peer
from devnet import layout
from devnet.layout import PORT_RANGE, create_devnet, pick_free_ports, signature_workers_for
from devnet.manifest import Manifest, ManifestError
from ledger import Genesis


def test_a_local_devnet(tmp_path: Path) -> None:
    manifest = create_devnet(tmp_path / "net", validators=4, period_seconds=3)
    assert Manifest.load(tmp_path / "net") == manifest
    assert manifest.local and manifest.names == ("v1", "v2", "v3", "v4")
    genesis_text = (tmp_path / "net" / "genesis.json").read_text()
    genesis = Genesis.from_json(genesis_text)
    assert genesis.chain_id == manifest.chain_id and genesis.params.period_seconds == 3
    assert {a.hex() for a, _, _ in genesis.validators} == {v.node_id for v in manifest.validators}
    ports = set()
    for entry in manifest.validators:
        home = NodeHome(Path(entry.home))
        assert home.genesis_path.read_text() == genesis_text
        assert home.load_key().public_key.hex() == entry.node_id
        config = home.load_config()
        assert config.moniker == entry.name and config.devnet.admin
        assert config.devnet.check_recorded_effects, "devnets run the recorded-effects cross-check"
        assert config.p2p.listen == entry.p2p_address and entry.rpc_url == f"http://{config.rpc.listen}"
        assert {(parse_peer(p)[0] or b"").hex() for p in config.p2p.peers} == {v.node_id for v in manifest.validators} - {entry.node_id}
        ports |= {int(config.p2p.listen.rsplit(":")[1]), int(config.rpc.listen.rsplit(":")[1])}
    assert len(ports) == 8 and all(PORT_RANGE[0] <= p < PORT_RANGE[1] for p in ports)


def test_the_keyring_holds_every_named_key_unencrypted_and_private(tmp_path: Path) -> None:
    manifest = create_devnet(tmp_path / "net", validators=1)
    keystore = Keystore(Path(manifest.keyring))
    names = {n for names in manifest.keys.values() for n in names}
    assert {k.name for k in keystore.list()} == names
    genesis = json.loads((tmp_path / "net" / "genesis.json").read_text())
    council_keys = {k for n in genesis["nodes"] for k in n["council"]["keys"]}
    for info in keystore.list():
        assert not info.encrypted and keystore.is_private(info.name)
        if "council" in info.name:
            assert info.address.hex() in council_keys
    assert stat.S_IMODE(keystore.dir.stat().st_mode) == 0o700


def test_an_existing_devnet_is_not_overwritten(tmp_path: Path) -> None:
    create_devnet(tmp_path, validators=1)
    with pytest.raises(ManifestError, match="already"):
        create_devnet(tmp_path, validators=1)


def test_hosts_one_validator_each_on_all_interfaces(tmp_path: Path) -> None:
    manifest = create_devnet(tmp_path, hosts=("10.0.0.1", "10.0.0.2", "10.0.0.2"))
    assert not manifest.local and len(manifest.validators) == 3
    assert [v.p2p_address for v in manifest.validators] == ["10.0.0.1:26656", "10.0.0.2:26656", "10.0.0.2:26666"]
    assert manifest.validators[2].rpc_url == "http://10.0.0.2:26667"
    config = NodeHome(Path(manifest.validators[0].home)).load_config()
    assert config.p2p.listen == "0.0.0.0:26656" and not config.devnet.admin and config.devnet.check_recorded_effects
    assert sorted(p.split("@")[1] for p in config.p2p.peers) == ["10.0.0.2:26656", "10.0.0.2:26666"]


def test_signature_workers_only_where_the_validators_leave_a_core_free() -> None:
    assert [signature_workers_for(4, cores) for cores in (1, 2, 4, 5, 8)] == [0, 0, 0, 1, 1]
    assert signature_workers_for(1, 1) == 0 and signature_workers_for(1, 2) == 1


@pytest.mark.parametrize(("cores", "expected"), [(2, 0), (4, 0), (8, 1)])
def test_a_local_devnet_sets_signature_workers_by_this_machines_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int, expected: int) -> None:
    monkeypatch.setattr(layout, "usable_cores", lambda: cores)
    manifest = create_devnet(tmp_path / "net", validators=4)
    assert [NodeHome(Path(e.home)).load_config().mempool.signature_workers for e in manifest.validators] == [expected] * 4


def test_a_devnet_on_hosts_keeps_the_default_signature_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "usable_cores", lambda: 1)  # this machine's cores say nothing of the hosts'
    manifest = create_devnet(tmp_path / "net", hosts=("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"))
    assert {NodeHome(Path(e.home)).load_config().mempool.signature_workers for e in manifest.validators} == {1}


def test_usable_cores_is_this_process_affinity() -> None:
    import os

    assert layout.usable_cores() == (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())


def test_free_ports_are_distinct_and_in_range() -> None:
    ports = pick_free_ports(10)
    assert len(set(ports)) == 10 and all(PORT_RANGE[0] <= p < PORT_RANGE[1] for p in ports)

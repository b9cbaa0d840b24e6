"""consensus/config.py: a node's config.json read back as written, and every bad value refused with
a message that names the setting, before the node starts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from consensus.config import ConfigError, MempoolConfig, NodeConfig, NodeHome


def test_a_written_config_reads_back_equal(tmp_path: Path) -> None:
    home = NodeHome(tmp_path)
    config = replace(NodeConfig(moniker="x"), mempool=MempoolConfig(max_txs=7, signature_workers=0))
    home.write_config(config)
    assert home.load_config() == config


def test_signature_workers_default_to_one() -> None:
    assert NodeConfig().mempool.signature_workers == 1


@pytest.mark.parametrize("value", [-1, 17])
def test_signature_workers_out_of_bounds_are_refused(tmp_path: Path, value: int) -> None:
    home = NodeHome(tmp_path)
    with pytest.raises(ConfigError, match=r"mempool\.signature_workers must be an integer from 0 to 16"):
        home.write_config(replace(NodeConfig(), mempool=MempoolConfig(signature_workers=value)))  # refused as written
    doc = json.loads(NodeConfig().to_json())
    doc["mempool"]["signature_workers"] = value
    home.config_path.parent.mkdir(parents=True, exist_ok=True)
    home.config_path.write_text(json.dumps(doc))  # edited by hand
    with pytest.raises(ConfigError, match=r"mempool\.signature_workers must be an integer from 0 to 16"):
        home.load_config()


@pytest.mark.parametrize("value", ["2", 1.0, True, None])
def test_a_setting_of_the_wrong_type_is_refused(value: object) -> None:
    doc = json.loads(NodeConfig().to_json())
    doc["mempool"]["signature_workers"] = value
    with pytest.raises(ConfigError, match=r"mempool.signature_workers|signature_workers must be"):
        NodeConfig.from_json(json.dumps(doc)).validate()


def test_an_unknown_setting_is_refused() -> None:
    doc = json.loads(NodeConfig().to_json())
    doc["mempool"]["signature_worker"] = 0
    with pytest.raises(ConfigError, match="unknown setting"):
        NodeConfig.from_json(json.dumps(doc))


def test_the_transaction_indexes_are_kept_unless_turned_off() -> None:
    assert NodeConfig().tx_index.enabled is True
    doc = json.loads(NodeConfig().to_json())
    doc["tx_index"]["enabled"] = False
    assert NodeConfig.from_json(json.dumps(doc)).tx_index.enabled is False
    doc["tx_index"]["enabled"] = "false"
    with pytest.raises(ConfigError, match=r"tx_index\.enabled must be bool"):
        NodeConfig.from_json(json.dumps(doc))

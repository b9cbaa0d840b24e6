"""`hearth audit replay|prove|report` through click's CliRunner: a node home on LevelDB, and a node's
RPC (a fake answering from a built chain)."""

from __future__ import annotations

import csv
import json
import re
from xml.etree import ElementTree
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.audit import commands
from cli.audit.replay import ReplayResult, replay
from cli.audit.report import series_tables
from cli.main import main
from consensus.block_store import BLOCK, h8
from ledger import LevelDBStore
from tests.audit.chain import ChainBuilder, FakeRpc, audit_genesis, economy_chain
from tests.ledger.helpers import key


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped node's home: genesis.json and data/ledger holding an economy chain."""
    root = tmp_path_factory.mktemp("node")
    genesis = audit_genesis()
    (root / "genesis.json").write_text(json.dumps(genesis.document))
    (root / "data" / "ledger").mkdir(parents=True)
    store = LevelDBStore(str(root / "data" / "ledger"))
    economy_chain(ChainBuilder(genesis, store))
    store.close()
    return root


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    return economy_chain()


@pytest.fixture
def rpc(chain: ChainBuilder, monkeypatch: pytest.MonkeyPatch) -> FakeRpc:
    fake = FakeRpc(chain)
    monkeypatch.setattr(commands, "make_client", lambda url: fake)
    return fake


@pytest.fixture
def genesis_file(tmp_path: Path) -> Path:
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(audit_genesis().document))
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["audit", *args], catch_exceptions=False)


def test_replay_of_a_node_home_verifies(home: Path) -> None:
    result = run("replay", "--home", str(home))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.startswith("VERIFIED: chain hearth-test")
    assert "final height 11" in result.stdout
    assert "demurrage collected" in result.stdout and "UBI paid" in result.stdout
    assert "the node's own state:" in result.stdout


def test_replay_json_of_a_node_home(home: Path) -> None:
    result = run("replay", "--home", str(home), "--json", "--jobs", "2")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["final_height"] == 11 and data["divergence"] is None
    assert len(data["slashes"]) == 1


def test_replay_of_a_tampered_home_names_the_height(home: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    store = LevelDBStore(str(copy / "data" / "ledger"))
    data = bytearray(store.get(BLOCK + h8(8)))
    data[-5] ^= 0x40
    store.write_batch({BLOCK + h8(8): bytes(data)})
    store.close()
    result = run("replay", "--home", str(copy))
    assert result.exit_code == commands.EXIT_NOT_VERIFIED
    assert result.stdout.startswith("NOT VERIFIED: height 8:")
    assert "verified up to height 7" in result.stdout
    as_json = json.loads(run("replay", "--home", str(copy), "--json").stdout)
    assert (as_json["ok"], as_json["divergence"]["height"]) == (False, 8)


def test_replay_needs_one_source(home: Path) -> None:
    assert run("replay").exit_code == 2
    assert run("replay", "--home", str(home), "--rpc", "http://x").exit_code == 2
    assert "--genesis" in run("replay", "--rpc", "http://x").stderr


def test_replay_of_a_missing_home_is_a_user_error(tmp_path: Path) -> None:
    result = run("replay", "--home", str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert "no genesis file" in result.stderr


def test_replay_over_rpc_verifies_and_agrees_with_the_home(rpc: FakeRpc, genesis_file: Path, home: Path) -> None:
    over_rpc = json.loads(run("replay", "--rpc", "http://node", "--genesis", str(genesis_file), "--json").stdout)
    from_home = json.loads(run("replay", "--home", str(home), "--json").stdout)
    assert over_rpc["ok"] is True
    assert over_rpc["evidence_checked"] == from_home["evidence_checked"] == 1 and over_rpc["evidence_summarised_only"] == 0
    for name in ("final_height", "final_state_root", "supply", "slashes", "txs", "blocks"):
        assert over_rpc[name] == from_home[name]


def test_replay_over_rpc_refuses_another_genesis(rpc: FakeRpc, tmp_path: Path) -> None:
    other = audit_genesis().document | {"chain_id": "other"}
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    result = run("replay", "--rpc", "http://node", "--genesis", str(path))
    assert result.exit_code == 1
    assert "another genesis" in result.stderr


def test_replay_over_rpc_names_a_lying_node(rpc: FakeRpc, genesis_file: Path) -> None:
    def lie(answer: Any) -> Any:
        if answer["header"]["height"] == 6:
            answer = {**answer, "txs": answer["txs"][::-1] + [answer["txs"][0]]}
        return answer

    rpc.tamper["block"] = lie
    result = run("replay", "--rpc", "http://node", "--genesis", str(genesis_file))
    assert result.exit_code == commands.EXIT_NOT_VERIFIED
    assert "height 6: header: txs_hash does not match" in result.stdout


# report -----------------------------------------------------------------------------------------------------
def cells(html_text: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table id="t-{table}">.*?<tbody>(.*?)</tbody>', html_text, re.S)
    assert body is not None
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1))]


def test_the_reports_numbers_are_the_replays(rpc: FakeRpc, chain: ChainBuilder, genesis_file: Path, tmp_path: Path) -> None:
    out, csv_dir = tmp_path / "report.html", tmp_path / "csv"
    result = run("report", "--rpc", "http://node", "--genesis", str(genesis_file), "--out", str(out), "--csv-dir", str(csv_dir))
    assert result.exit_code == 0, result.stdout + result.stderr
    text = out.read_text()
    # self-contained: no script, no external reference
    for reference in ("<script", "src=", "href=", "url(", "@import", "<link"):
        assert reference not in text
    svgs = re.findall(r"<svg.*?</svg>", text, re.S)
    assert len(svgs) >= 6
    for svg in svgs:
        ElementTree.fromstring(svg)  # well-formed: a browser draws it
    replayed: ReplayResult = replay(chain.source(), jobs=1)
    periods = replayed.periods
    assert len(periods) >= 4
    assert [[int(c) for c in row] for row in cells(text, "activity")] == [[p.period, p.height, p.time_ms, p.blocks, p.txs] for p in periods]
    assert sum(p.txs for p in periods) == replayed.txs and sum(p.blocks for p in periods) == replayed.blocks
    supply = cells(text, "supply")
    assert [[int(c) for c in row] for row in supply] == [
        [p.period, p.height, p.circulating, p.commons_pool, p.ubi_reserve, p.bonded, p.total_supply] for p in periods
    ]
    assert [float(r[3]) for r in cells(text, "gini")] == [p.gini for p in periods]
    assert [int(r[1]) for r in cells(text, "ubi")] == [p.ubi_per_member for p in periods]
    assert [int(r[1]) for r in cells(text, "demurrage")] == [p.demurrage_collected for p in periods]
    assert sum(int(r[1]) for r in cells(text, "demurrage")) == replayed.supply["demurrage_collected"]
    quotas = [(int(r[0]), r[1], r[2], int(r[4]), int(r[6])) for r in cells(text, "quotas")]
    assert quotas == [(p.period, q.node, q.resource, q.allowed, q.consumed) for p in periods for q in p.quotas]
    assert any(consumed > 0 for *_, consumed in quotas)
    housing = cells(text, "housing")
    assert [(int(r[0]), r[1], int(r[3]), int(r[5])) for r in housing] == [(p.period, h.node, h.occupied, h.waiting) for p in periods for h in p.housing]
    # the CSVs hold the same tables
    for name, table in series_tables(replayed).items():
        with open(csv_dir / f"{name}.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert tuple(rows[0]) == table.columns
        assert rows[1:] == [[str(v) for v in row] for row in table.rows]
    assert "Verified: every block from genesis to height 11" in text


def test_a_report_of_a_chain_that_does_not_verify_says_so(home: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    store = LevelDBStore(str(copy / "data" / "ledger"))
    store.write_batch({BLOCK + h8(9): None})
    store.close()
    out = tmp_path / "r.html"
    result = run("report", "--home", str(copy), "--out", str(out))
    assert result.exit_code == commands.EXIT_NOT_VERIFIED
    assert "NOT verified: height 9" in out.read_text()


# prove ------------------------------------------------------------------------------------------------------
def test_prove_verifies_an_account(rpc: FakeRpc, chain: ChainBuilder, genesis_file: Path) -> None:
    result = run("prove", key(1).address.hex(), "--rpc", "http://node", "--genesis", str(genesis_file))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"VERIFIED: account {key(1).address.hex()} at height 11")
    assert "trust root: the genesis validators" in result.stdout
    data = json.loads(run("prove", key(1).address.hex(), "--rpc", "http://node", "--json").stdout)
    assert data["verified"] is True and data["trust"] == "node"
    assert data["account"]["balance"] == chain.ledger.get_record(b"a" + key(1).address).balance


def test_prove_rejects_a_wrong_proof_with_the_reason(rpc: FakeRpc, genesis_file: Path) -> None:
    def wrong(answer: Any) -> Any:
        siblings = [list(level) for level in answer["proof"]["siblings"]]
        siblings[0][0] = "00" * 32
        return {**answer, "proof": {**answer["proof"], "siblings": siblings}}

    rpc.tamper["proof"] = wrong
    result = run("prove", key(1).address.hex(), "--rpc", "http://node", "--genesis", str(genesis_file))
    assert result.exit_code == commands.EXIT_NOT_VERIFIED
    assert "REJECTED: wrong proof" in result.stderr


def test_prove_rejects_a_forged_certificate(rpc: FakeRpc, genesis_file: Path) -> None:
    def forged(answer: Any) -> Any:
        sigs = [dict(s) for s in answer["commit"]["signatures"]]
        sigs[-1]["signature"] = "11" * 64
        return {**answer, "commit": {**answer["commit"], "signatures": sigs}}

    rpc.tamper["block"] = forged
    result = run("prove", key(1).address.hex(), "--rpc", "http://node", "--genesis", str(genesis_file), "--json")
    assert result.exit_code == commands.EXIT_NOT_VERIFIED
    assert json.loads(result.stdout) == {"verified": False, "reason": json.loads(result.stdout)["reason"]}
    assert "forged certificate" in json.loads(result.stdout)["reason"]


def test_prove_refuses_a_non_address(rpc: FakeRpc) -> None:
    result = run("prove", "nope", "--rpc", "http://node")
    assert result.exit_code == 1


def test_replay_of_a_running_nodes_home_says_to_stop_it(home: Path) -> None:
    store = LevelDBStore(str(home / "data" / "ledger"))  # as a running node holds it
    try:
        result = run("replay", "--home", str(home))
    finally:
        store.close()
    assert result.exit_code == 1
    assert "stop the node" in result.stderr


def test_the_progress_line_shows_blocks_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    progress = commands.Progress(enabled=True)
    progress(5, 10, 50)
    progress(10, 10, 100)
    progress.done()
    err = capsys.readouterr().err
    assert "replaying 10/10 (100.0%)" in err and "blocks/s" in err and "tx/s" in err


def test_replay_from_an_unreachable_node_says_so(genesis_file: Path) -> None:
    from tests.node.helpers import free_ports

    result = run("replay", "--rpc", f"http://127.0.0.1:{free_ports(1)[0]}", "--genesis", str(genesis_file))
    assert result.exit_code == 3
    assert "cannot reach the node" in result.stderr

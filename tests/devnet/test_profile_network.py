"""The profiling harness's reading of a node log (tests/benchmarks/profile_network.py): each commit
line's timeline split into the segments of a height, and their summary. The lines are the node's
own: a validator's, a proposer's, and one committed by block sync with no timeline. And the
CPU-clock profile it can run a validator under (tests/benchmarks/cprofile_node.py), and the census
of its heap (tests/benchmarks/census_node.py)."""

from __future__ import annotations

import asyncio
import cProfile
import functools
import gc
import json
import logging
import pstats
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consensus.config import ConsensusConfig
from consensus.node import Node
from tests.benchmarks.census_node import census, census_summary
from tests.benchmarks.cprofile_node import calls_per_transfer
from tests.benchmarks.cpu_phases_node import PhaseClock, callback_name, phases_per_transfer
from tests.benchmarks.profile_network import ROOT, Height, height_segments, node_counters, summarize_heights
from tests.ledger.helpers import transfer_tx
from tests.node.helpers import wait_until
from tests.node.test_node_inprocess import lone_validator_home

VALIDATOR = (
    "2026-12-01 23:01:12,335 INFO hearth.node: committed height=727 hash=bd6f1f5ea57df761 txs=3079 "
    "time_ms=1796166071629 round=0 state_root=b91a3b945065c2ca "
    "steps_ms=block_frame=724,block=983,prevote=1086,precommit=1104,decided=1156,done=1322"
)
PROPOSER = (
    "2026-12-01 23:01:12,232 INFO hearth.node: committed height=727 hash=bd6f1f5ea57df761 txs=3079 "
    "time_ms=1796166071629 round=0 state_root=b91a3b945065c2ca steps_ms=proposed=95,prevote=97,precommit=491,decided=512,done=603"
)
DECIDED_BY_OTHERS = (  # precommits arrived before this node's own prevote: no prevote or precommit mark
    "2026-12-01 23:01:10,766 INFO hearth.node: committed height=725 hash=8cb3f98ce46fa600 txs=2277 "
    "time_ms=1796166070076 round=0 state_root=278133ae48d1c1ee steps_ms=block_frame=14,block=177,decided=281,done=430"
)
LATER_ROUND = (  # round 0's nil prevote came before round 1's block: its marks mix rounds
    "2026-12-01 23:01:20,100 INFO hearth.node: committed height=730 hash=8cb3f98ce46fa600 txs=50 "
    "time_ms=1796166079076 round=1 state_root=278133ae48d1c1ee steps_ms=prevote=3000,block_frame=3100,block=3101,precommit=3500,decided=3600,done=3650"
)
SYNCED = (
    "2026-12-01 23:01:10,766 INFO hearth.node: committed height=9 hash=8cb3f98ce46fa600 txs=0 "
    "time_ms=1796166070076 round=0 state_root=278133ae48d1c1ee steps_ms=-"
)


def test_a_validators_commit_line_splits_into_the_segments_of_its_height() -> None:
    assert height_segments(VALIDATOR) == Height(
        727, 3079, 0, {"arrive": 724, "precheck": 259, "execute": 103, "quorum": 70, "commit": 166, "total": 1322},
    )


def test_a_proposers_block_arrives_when_proposed_and_needs_no_precheck() -> None:
    assert height_segments(PROPOSER) == Height(
        727, 3079, 0, {"arrive": 95, "precheck": 0, "execute": 2, "quorum": 415, "commit": 91, "total": 603},
    )


def test_a_missing_mark_counts_as_the_one_before_it() -> None:
    parsed = height_segments(DECIDED_BY_OTHERS)
    assert parsed is not None and parsed.segments == {"arrive": 14, "precheck": 163, "execute": 0, "quorum": 104, "commit": 149, "total": 430}


def test_lines_without_a_timeline_are_not_heights() -> None:
    assert height_segments(SYNCED) is None
    assert height_segments("2026-12-01 23:01:10,766 INFO hearth.p2p: peer v2(831affd0) connected (inbound, 127.0.0.1)") is None


def test_the_summary_gives_mean_p90_and_max_of_each_segment() -> None:
    rows = [r for r in map(height_segments, [VALIDATOR, PROPOSER, DECIDED_BY_OTHERS, SYNCED, LATER_ROUND]) if r is not None]
    summary = summarize_heights(rows)
    assert summary["heights"] == 3 and summary["later_round_heights"] == 1
    assert summary["txs_mean"] == round((3079 + 3079 + 2277) / 3)
    assert summary["total"] == {"mean": round((1322 + 603 + 430) / 3), "p90": 603, "max": 1322}
    assert summary["arrive"]["max"] == 724 and summary["precheck"]["mean"] == round((259 + 0 + 163) / 3)
    assert summarize_heights([]) == {"heights": 0, "later_round_heights": 0}


def test_it_reads_the_commit_lines_a_real_node_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A lone in-process validator commits a transfer; its own commit lines parse into heights."""
    home = lone_validator_home(tmp_path, ConsensusConfig(block_interval_ms=20))

    async def main() -> None:
        node = Node(home.root)
        await node.start()
        try:
            await node.submit_tx(transfer_tx(1, 2, 1, 0))
            await wait_until(lambda: node.ledger.head.height >= 3 and node.mempool.rechecking is False and len(node.mempool) == 0, 20, "the transfer committed")
        finally:
            await node.stop()

    with caplog.at_level(logging.INFO, logger="hearth.node"):
        asyncio.run(main())
    rows = [r for r in map(height_segments, (rec.getMessage() for rec in caplog.records)) if r is not None]
    assert len(rows) >= 3 and sum(r.txs for r in rows) == 1  # every height, the transfer in one of them
    for row in rows:
        assert row.round == 0
        assert row.segments["total"] >= max(row.segments[name] for name in ("arrive", "precheck", "execute", "quorum", "commit"))
        assert all(value >= 0 for value in row.segments.values())


def _twice_per_transfer(transfers: int) -> None:
    for _ in range(2 * transfers):
        _leaf()


def _leaf() -> int:
    return 1


def test_calls_per_transfer_counts_each_functions_calls_over_the_transfers(tmp_path: Path) -> None:
    profile = cProfile.Profile(time.thread_time)
    profile.runcall(_twice_per_transfer, 500)
    profile.dump_stats(str(tmp_path / "stats"))
    summary = calls_per_transfer(tmp_path / "stats", 500, top=5)
    leaf = [row for row in summary["top"] if row[2].endswith("(_leaf)")]  # type: ignore[union-attr]
    assert len(leaf) == 1 and leaf[0][0] == 2.0 and leaf[0][1] >= 0
    assert summary["python_calls_per_transfer"] >= 2.0 and summary["calls_per_transfer"] >= summary["python_calls_per_transfer"]


def test_cprofile_node_runs_the_hearth_command_and_writes_its_profile(tmp_path: Path) -> None:
    """The wrapper the harness starts a validator with: the command runs (here `--help`) and its
    statistics are written when it ends, with the CLI's own functions among them."""
    out = tmp_path / "stats"
    done = subprocess.run([sys.executable, "-m", "tests.benchmarks.cprofile_node", str(out), "--", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "node" in done.stdout
    assert any(file.endswith("main.py") for file, _, _ in pstats.Stats(str(out)).stats)  # type: ignore[attr-defined]
    refused = subprocess.run([sys.executable, "-m", "tests.benchmarks.cprofile_node", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "usage" in refused.stderr


def _spin(clock: list[float], seconds: float) -> None:
    clock[0] += seconds


def test_phase_clock_takes_each_phases_inner_phases_out_of_its_time() -> None:
    """Exclusive times: an outer phase of 10 s that calls an inner phase of 3 s twice holds 4 s."""
    now = [0.0]
    phases = PhaseClock(lambda: now[0])
    inner = phases.wrap(lambda: _spin(now, 3.0), "inner")

    def outer() -> None:
        _spin(now, 1.0)
        inner()
        _spin(now, 2.0)
        inner()
        _spin(now, 1.0)

    phases.wrap(outer, "outer")()
    assert dict(phases.seconds) == {"inner": 6.0, "outer": 4.0} and phases.calls == {"inner": 2, "outer": 1}
    failing = phases.wrap(lambda: 1 / 0, "failing")
    with pytest.raises(ZeroDivisionError):
        failing()
    assert phases.calls["failing"] == 1 and phases._stack == []  # a raising phase still ends


def test_the_collectors_runs_are_phases_taken_out_of_the_phase_that_set_them_off() -> None:
    now = [0.0]
    phases = PhaseClock(lambda: now[0])

    def allocating() -> None:
        _spin(now, 1.0)
        phases._collection("start", {"generation": 0})
        _spin(now, 2.0)
        phases._collection("stop", {"generation": 0})
        _spin(now, 1.0)

    phases.wrap(allocating, "allocating")()
    assert dict(phases.seconds) == {"gc:gen0": 2.0, "allocating": 2.0}
    phases.wrap(lambda: phases._collection("stop", {"generation": 1}), "late")()  # a stop whose start came before the callback
    assert phases.calls["late"] == 1 and "gc:gen1" not in phases.calls and phases._stack == []
    real = PhaseClock()
    gc.callbacks.append(real._collection)
    try:
        gc.collect(1)
    finally:
        gc.callbacks.remove(real._collection)
    assert real.calls == {"gc:gen1": 1} and real._stack == []


def test_node_counters_pick_the_checks_the_mempool_and_the_gossip_out_of_a_status() -> None:
    status = {
        "height": 9,
        "signature_checks": {"inline": 120, "spared": 3},
        "mempool": {"txs": 2, "added": 118},
        "node_stats": {"txs_received": 90, "tx_batches_dropped": 1, "relayed": 0},
    }
    assert node_counters(status) == {
        "signature_checks": {"inline": 120, "spared": 3},
        "mempool": {"txs": 2, "added": 118},
        "txs_received": 90,
        "tx_batches_dropped": 1,
    }
    assert node_counters({}) == {"signature_checks": None, "mempool": None, "txs_received": None, "tx_batches_dropped": None}


def test_each_event_loop_callback_is_named_by_what_it_runs() -> None:
    async def stepping() -> None:
        await asyncio.sleep(0)

    async def main() -> str:
        task = asyncio.ensure_future(stepping())  # its first step is a callback the loop has ready
        ready = asyncio.get_running_loop()._ready  # type: ignore[attr-defined]
        handle = next(h for h in ready if getattr(h._callback, "__self__", None) is task)
        await task
        return callback_name(handle._callback)

    assert asyncio.run(main()) == "task:test_each_event_loop_callback_is_named_by_what_it_runs.<locals>.stepping"
    assert callback_name(_leaf) == "cb:_leaf" and callback_name(functools.partial(_leaf)) == "cb:_leaf"


class _Wired:
    @classmethod
    def made(cls, value: int) -> tuple[type, int]:
        return cls, value

    @staticmethod
    def plain(value: int) -> int:
        return value + 1


class _WiredChild(_Wired):
    pass


def test_class_and_static_methods_are_timed_as_what_they_are() -> None:
    """A classmethod wrapped keeps binding the class it is called on; a staticmethod binds nothing."""
    phases = PhaseClock()
    here = sys.modules[__name__].__name__
    phases.install({f"{here}:_Wired": ("made", "plain")}, frames=False)
    try:
        assert _Wired.made(3) == (_Wired, 3) and _WiredChild.made(4) == (_WiredChild, 4)
        assert _Wired.plain(1) == 2 and _Wired().plain(2) == 3
    finally:
        asyncio.events.Handle._run = _ORIGINAL_RUN  # install() timed the event loop and the collector too: undo for the tests after
        gc.callbacks.remove(phases._collection)
    assert phases.calls == {"_Wired.made": 2, "_Wired.plain": 2}


_ORIGINAL_RUN = asyncio.events.Handle._run


def test_a_sockets_callback_names_the_socket_by_its_local_port() -> None:
    """The accepted side of a connection is named by the listening port's name, the dialled side `out`."""
    names: list[str] = []

    async def main() -> None:
        accepted: asyncio.Future[asyncio.Transport] = asyncio.get_running_loop().create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                accepted.set_result(transport)  # type: ignore[arg-type]

        server = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        dialled, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, "127.0.0.1", port)
        inbound = await accepted
        names.extend(callback_name(t._read_ready, {port: "rpc"}) for t in (inbound, dialled))  # type: ignore[attr-defined]
        dialled.close()
        inbound.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert names == ["cb:_SelectorSocketTransport._read_ready[rpc]", "cb:_SelectorSocketTransport._read_ready[out]"]


def test_phases_per_transfer_divides_by_the_transfers(tmp_path: Path) -> None:
    path = tmp_path / "phases.json"
    path.write_text(json.dumps({"total_s": 1.0, "seconds": {"a": 0.5, "b": 0.3}, "calls": {"a": 10, "b": 4}}))
    assert phases_per_transfer(path, 1000) == {
        "window": "whole run", "main_thread_us_per_transfer": 1000.0, "unattributed_us_per_transfer": 200.0,
        "phases": [[500.0, 10, "a"], [300.0, 4, "b"]],
    }


def test_phases_per_transfer_counts_the_window_between_the_last_two_snapshots(tmp_path: Path) -> None:
    """Start-up before the first snapshot and what follows the second stay out of the figures."""
    now = [0.0]
    phases = PhaseClock(lambda: now[0])
    work = phases.wrap(lambda seconds: _spin(now, seconds), "work")
    idle = phases.wrap(lambda: _spin(now, 1.0), "idle")
    work(5.0)  # start-up
    phases.snapshot()
    work(0.3)
    work(0.2)
    _spin(now, 0.5)  # in no phase
    phases.snapshot()
    work(9.0)
    idle()  # after the window
    path = tmp_path / "phases.json"
    path.write_text(json.dumps(phases.to_json()))
    assert phases_per_transfer(path, 1000) == {
        "window": "snapshots", "main_thread_us_per_transfer": 1000.0, "unattributed_us_per_transfer": 500.0,
        "phases": [[500.0, 2, "work"]],
    }


def _run_wrapped_lone_validator(tmp_path: Path, wrapper: str, out: Path) -> None:
    """A lone validator under `wrapper` (tests/benchmarks/WRAPPER.py OUT -- node start ...) until
    SIGTERM, sent a SIGUSR1 after its third block and another after its sixth, as profile_network
    signals a step's start and end."""
    home = lone_validator_home(tmp_path, ConsensusConfig(block_interval_ms=20))
    log = tmp_path / "node.log"
    with open(log, "wb") as output:
        node = subprocess.Popen(
            [sys.executable, "-m", f"tests.benchmarks.{wrapper}", str(out), "--", "node", "start", "--home", str(home.root)],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
        )
    def wait_for_log(text: str) -> None:
        deadline = time.monotonic() + 60
        while text not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline and node.poll() is None, log.read_text(errors="replace")[-2000:]
            time.sleep(0.05)  # polling a log file another process writes: no event to wait on

    try:
        wait_for_log("committed height=3 ")
        node.send_signal(signal.SIGUSR1)  # a snapshot, as profile_network takes at the load's start
        wait_for_log("committed height=6 ")
        node.send_signal(signal.SIGUSR1)  # and at its end
        wait_for_log("committed height=7 ")
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
            raise


def test_cpu_phases_node_runs_a_node_and_writes_its_phases(tmp_path: Path) -> None:
    """The wrapper the harness starts a validator with: a lone validator runs under it until
    SIGTERM, and its phases are written, among them the loop's callbacks and the commit's."""
    out = tmp_path / "phases.json"
    _run_wrapped_lone_validator(tmp_path, "cpu_phases_node", out)
    data = json.loads(out.read_text())
    assert data["calls"]["LedgerDB.commit"] >= 7 and data["calls"]["LedgerApp._commit"] >= 7
    first, second = data["snapshots"]
    assert 3 <= first["calls"]["LedgerDB.commit"] < second["calls"]["LedgerDB.commit"] and second["calls"]["LedgerDB.commit"] >= 6
    assert 0 < first["total_s"] < second["total_s"] <= data["total_s"]
    window = phases_per_transfer(out, 1)
    assert window["window"] == "snapshots" and 0 < window["main_thread_us_per_transfer"] < data["total_s"] * 1e6
    assert any(name.startswith("task:") for name in data["seconds"]) and any(name.startswith("cb:") for name in data["seconds"])
    assert 0 < sum(data["seconds"].values()) <= data["total_s"]
    refused = subprocess.run([sys.executable, "-m", "tests.benchmarks.cpu_phases_node", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "usage" in refused.stderr


def test_a_census_counts_the_objects_a_node_holds_by_type_with_their_bytes(tmp_path: Path) -> None:
    """census_node's census, and the summary profile_network prints: what a structure holds shows
    in the counts (the bytes too, which the collector does not track, reached through the list that
    holds them), each object counted once however many refer to it."""
    before = census()
    held = [bytes([i % 256]) * (100 + i) for i in range(5_000)]  # 5,000 new bytes objects of 133-5,132 bytes
    also = list(held)  # the same objects again: not counted twice
    after = census()
    assert after["types"]["bytes"][0] - before["types"]["bytes"][0] >= 5_000
    assert after["types"]["bytes"][1] - before["types"]["bytes"][1] >= sum(map(sys.getsizeof, held))
    assert after["types"]["bytes"][0] - before["types"]["bytes"][0] < 5_000 + 500  # not 10,000: once each
    path = tmp_path / "census.json"
    path.write_text(json.dumps([before, after]))
    summary = census_summary(path, top=5)
    assert summary["censuses"] == 2 and summary["objects"] == [before["objects"], after["objects"]]
    assert summary["types_first_last"]["bytes"] == [before["types"]["bytes"], after["types"]["bytes"]]
    assert len(summary["types_first_last"]) == 5
    del held, also


def test_census_node_runs_a_node_and_writes_a_census_at_each_signal(tmp_path: Path) -> None:
    """census_node as the harness starts it: a census at each SIGUSR1, written at the end, of all
    the node holds (what it froze once loaded included)."""
    out = tmp_path / "census.json"
    _run_wrapped_lone_validator(tmp_path, "census_node", out)
    first, last = json.loads(out.read_text())
    for taken in (first, last):
        assert taken["frozen"] > 10_000 and taken["objects"] > taken["frozen"] and taken["max_rss_mib"] > 0
        assert taken["types"]["consensus.node.Node"][0] == 1  # frozen at the start, reached all the same
        assert taken["types"]["consensus.mempool.Mempool"][0] == 1 and taken["types"]["bytes"][0] > 100
    summary = census_summary(out)
    assert summary["censuses"] == 2 and summary["max_rss_mib"] == [first["max_rss_mib"], last["max_rss_mib"]]

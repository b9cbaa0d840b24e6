"""`hearth audit replay|prove|report`: the auditor's commands (a thin click layer over
cli/audit/replay.py, prove.py and report.py).

Exit codes: 0 everything verified; 1 a user error (no such home, bad genesis file); 3 the node is
unreachable; 10 the chain (or the proof) did not verify: the message names the first height and
what diverged.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from cli.audit.prove import ProofRejected, fetch_and_verify
from cli.audit.replay import ReplayResult, replay
from cli.audit.report import write_report
from cli.audit.sources import BlockSource, RpcBlockSource, SourceError, load_genesis, open_home_source
from cli.errors import CliError, user_errors
from cli.output import format_coins
from cli.rpc_client import RpcClient
from ledger.crypto import address_from_text

EXIT_NOT_VERIFIED = 10

make_client: Callable[[str], Any] = RpcClient
"""How commands reach a node (tests put a fake here)."""


@click.group("audit")
def audit() -> None:
    """Verify the chain yourself: replay from genesis, prove an account, report on the economy."""


def _source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--jobs", type=click.IntRange(1, 64), default=None, help="Processes checking signatures (default: one per core).")(f)
    f = click.option("--genesis", "genesis_path", type=click.Path(dir_okay=False), default=None, help="Your genesis file (required with --rpc; default with --home: the node's).")(f)
    f = click.option("--rpc", "rpc_url", metavar="URL", default=None, help="Download the blocks from this node's JSON-RPC.")(f)
    f = click.option("--home", "home", type=click.Path(file_okay=False), default=None, help="Read the blocks from this (stopped) node's home.")(f)
    return f


def open_source(home: str | None, rpc_url: str | None, genesis_path: str | None) -> BlockSource:
    if (home is None) == (rpc_url is None):
        raise click.UsageError("give exactly one of --home DIR and --rpc URL")
    if home is not None:
        return open_home_source(home, genesis_path)
    if genesis_path is None:
        raise click.UsageError("--rpc needs --genesis FILE: the auditor's own copy of the genesis, the one thing it trusts")
    return RpcBlockSource(make_client(rpc_url), load_genesis(genesis_path), rpc_url or "")  # type: ignore[arg-type]


class Progress:
    """A one-line counter with blocks/s on a terminal's stderr, at most five updates a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, height: int, target: int, txs: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and height != target):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        percent = 100 * height / target if target else 100
        click.echo(f"\rreplaying {height}/{target} ({percent:5.1f}%)  {height / elapsed:8.1f} blocks/s  {txs / elapsed:9.1f} tx/s", nl=False, err=True)

    def done(self) -> None:
        if self.enabled and self.last:
            click.echo("", err=True)


@contextmanager
def audit_errors(as_json: bool) -> Iterator[None]:
    with user_errors(as_json):
        try:
            yield
        except SourceError as exc:
            raise CliError(str(exc)) from None


def run_replay(home: str | None, rpc_url: str | None, genesis_path: str | None, jobs: int | None, as_json: bool) -> ReplayResult:
    source = open_source(home, rpc_url, genesis_path)
    progress = Progress(enabled=not as_json and sys.stderr.isatty())
    try:
        return replay(source, jobs=jobs, on_progress=progress)
    finally:
        progress.done()
        source.close()


def summary_lines(result: ReplayResult) -> list[str]:
    s = result.supply
    lines = []
    if result.ok:
        lines.append(f"VERIFIED: chain {result.chain_id} from genesis {result.genesis_hash[:16]}… to height {result.final_height} ({result.source})")
    else:
        lines.append(f"NOT VERIFIED: {result.divergence}")
        lines.append(f"  verified up to height {result.final_height} of {result.source_height} ({result.source})")
    lines += [
        f"  blocks {result.blocks}, transactions {result.txs} ({result.tx_signatures} tx signatures, "
        f"{result.certificate_signatures} certificate signatures, {result.evidence_checked} evidence checked)",
        f"  final height {result.final_height}, state root {result.final_state_root}",
        f"  supply {format_coins(s['total'])} = circulating {format_coins(s['circulating'])} + commons pool "
        f"{format_coins(s['commons_pool'])} + UBI reserve {format_coins(s['ubi_reserve'])} + bonded {format_coins(s['bonded'])}",
        f"  demurrage collected {format_coins(s['demurrage_collected'])}, UBI paid {format_coins(s['ubi_paid'])}, "
        f"slashed {format_coins(s['slashed'])} in {len(result.slashes)} block(s)",
        f"  {result.blocks_per_s:.1f} blocks/s, {result.txs_per_s:.1f} tx/s in {result.elapsed_s:.2f} s",
    ]
    if result.node_state_entries:
        lines.append(f"  the node's own state: {result.node_state_entries} entries equal to the replayed state, every recorded root the certified one")
    if result.evidence_summarised_only:
        lines.append(f"  note: {result.evidence_summarised_only} block(s) carried an evidence summary only (RPC): slashes checked through the state root, equivocation signatures not")
    return lines


@audit.command("replay")
@_source_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def audit_replay(home: str | None, rpc_url: str | None, genesis_path: str | None, jobs: int | None, as_json: bool) -> None:
    """Re-verify the chain from genesis in a fresh state: certificates, signatures, transitions,
    state roots, conservation. Exit 0 only when everything verified."""
    with audit_errors(as_json):
        result = run_replay(home, rpc_url, genesis_path, jobs, as_json)
    if as_json:
        data = result.to_json()
        del data["periods"]
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo("\n".join(summary_lines(result)))
    if not result.ok:
        sys.exit(EXIT_NOT_VERIFIED)


@audit.command("report")
@_source_options
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="The HTML file to write.")
@click.option("--csv-dir", type=click.Path(file_okay=False), default=None, help="Also write the series as CSV files here.")
def audit_report(home: str | None, rpc_url: str | None, genesis_path: str | None, jobs: int | None, out: str, csv_dir: str | None) -> None:
    """Replay, then write the economy report: one self-contained HTML file (and CSVs)."""
    with audit_errors(False):
        result = run_replay(home, rpc_url, genesis_path, jobs, False)
    written = write_report(result, out, csv_dir)
    click.echo("\n".join(summary_lines(result)))
    click.echo("wrote " + ", ".join(str(p) for p in written))
    if not result.ok:
        sys.exit(EXIT_NOT_VERIFIED)


@audit.command("prove")
@click.argument("address")
@click.option("--height", type=click.IntRange(0), default=None, help="The height to prove at (nodes serve the head).")
@click.option("--rpc", "rpc_url", metavar="URL", required=True, envvar="HEARTH_RPC", help="The node to ask.")
@click.option("--genesis", "genesis_path", type=click.Path(dir_okay=False), default=None, help="Trust the genesis validators, not the node's word.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def audit_prove(address: str, height: int | None, rpc_url: str, genesis_path: str | None, as_json: bool) -> None:
    """Fetch ADDRESS's account entry with its Merkle proof, the header and commit certificate, and
    verify them like a light client."""
    with audit_errors(as_json):
        try:
            addr = address_from_text(address)
        except ValueError as exc:
            raise CliError(f"{address!r} is not an address: {exc}") from None
        genesis = load_genesis(genesis_path) if genesis_path else None
        try:
            proven = fetch_and_verify(make_client(rpc_url), addr, height, genesis)
        except ProofRejected as exc:
            if as_json:
                click.echo(json.dumps({"verified": False, "reason": str(exc)}))
            else:
                click.echo(f"REJECTED: {exc}", err=True)
            sys.exit(EXIT_NOT_VERIFIED)
    if as_json:
        click.echo(json.dumps({"verified": True, **proven.to_json()}, indent=2, sort_keys=True))
        return
    account = proven.account
    shown = "absent (proof of absence)" if account is None else f"balance {format_coins(account['balance'])} (settled to period {account['settled_period']}), nonce {account['nonce']}"
    trust = "the genesis validators" if proven.trust == "genesis" else "the validator set the node served (pass --genesis to check it against genesis)"
    click.echo(
        "\n".join(
            [
                f"VERIFIED: account {proven.address} at height {proven.height}",
                f"  entry: {shown}",
                f"  state root {proven.state_root} in block {proven.block_hash}",
                f"  certificate: power {proven.signed_power} of {proven.set_power}; trust root: {trust}",
            ]
        )
    )

"""`hearth devnet ...`: a local network of validators on loopback, and the faults to test it with.

A thin click layer over devnet/network.py. Every command takes --dir (default .devnet).
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

import click

from cli.output import short
from devnet.layout import create_devnet
from devnet.manifest import MANIFEST_NAME, UNENCRYPTED_KEYS_WARNING, ManifestError
from devnet.network import READY_TIMEOUT_S, Devnet
from devnet.processes import DevnetTimeout, NodeStatus, log_path
from devnet.scenarios import SCENARIOS, ScenarioFailed, run_scenario

__all__ = ["devnet"]

READY_HEIGHT = 2
"""`up` returns (or starts waiting for Ctrl-C) once every validator has committed this height."""

DIR_OPTION = click.option(
    "--dir",
    "directory",
    default=".devnet",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The devnet's directory (holds devnet.json).",
)


def _open(directory: Path) -> Devnet:
    try:
        return Devnet(directory)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None


def _warn() -> None:
    click.secho(f"WARNING: {UNENCRYPTED_KEYS_WARNING}", fg="yellow", bold=True, err=True)


@click.group("devnet")
def devnet() -> None:
    """A local Hearth network for trying things and for fault tests (devnet keys are UNENCRYPTED)."""


@devnet.command("up")
@DIR_OPTION
@click.option("--validators", default=4, show_default=True, type=click.IntRange(1, 64), help="How many validators (local devnets).")
@click.option("--period-seconds", default=30, show_default=True, type=click.IntRange(1, 86_400), help="Length of a demurrage/UBI period.")
@click.option("--hosts", default="", help="Comma-separated hosts, one validator each: write the homes for several machines.")
@click.option("--no-start", is_flag=True, help="Only write the genesis, homes and devnet.json; start nothing.")
@click.option("--detach", is_flag=True, help="Return once blocks commit, leaving the validators running (stop with `devnet stop`).")
@click.option("--ready-timeout", default=READY_TIMEOUT_S, show_default=True, type=click.FloatRange(1, 3600), help="Seconds to wait for the first blocks.")
def up(directory: Path, validators: int, period_seconds: int, hosts: str, no_start: bool, detach: bool, ready_timeout: float) -> None:
    """Create a devnet at DIR (or reuse the one there), start its validators, wait for blocks,
    print a table, and run until Ctrl-C, which stops every validator."""
    host_list = tuple(h.strip() for h in hosts.split(",") if h.strip())
    if host_list and not no_start:
        raise click.UsageError("--hosts writes homes for other machines, where each validator is started: add --no-start")
    if (directory / MANIFEST_NAME).exists():
        click.echo(f"using the devnet already at {directory} (delete the directory for a new one)", err=True)
    else:
        try:
            manifest = create_devnet(directory, validators, period_seconds, host_list)
        except (ManifestError, ValueError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"created devnet {manifest.chain_id} at {manifest.directory}", err=True)
    net = _open(directory)
    _warn()
    if no_start:
        _print_layout(net)
        return
    if not net.manifest.local:
        raise click.ClickException("this devnet runs on several machines: start each validator there with `hearth node start --home DIR`")

    interrupted = _InterruptFlag()
    try:
        with interrupted:
            try:
                net.start_all()
                click.echo(f"waiting for height {READY_HEIGHT} on every validator...", err=True)
                net.wait_for_height(READY_HEIGHT, ready_timeout)
            except (DevnetTimeout, ManifestError) as exc:
                logs = ", ".join(str(log_path(e)) for e in net.manifest.validators)
                raise click.ClickException(f"{exc}\nthe logs: {logs}") from None
            _print_status(net.status())
            _print_usage(net)
            if detach:
                return
            click.echo("running; Ctrl-C stops every validator", err=True)
            running = set(net.running())
            while not interrupted.is_set:
                time.sleep(0.5)
                now = set(net.running())  # also reaps validators that exited, so none lingers as a zombie
                for name in sorted(running - now):
                    click.echo(f"{name} is not running (log: {log_path(net.manifest.validator(name))})", err=True)
                for name in sorted(now - running):
                    click.echo(f"{name} is running again", err=True)
                running = now
    except BaseException:
        interrupted.set()
        raise
    finally:
        if interrupted.is_set:
            click.echo("stopping every validator...", err=True)
            net.stop_all()
            click.echo("stopped", err=True)


class _InterruptFlag:
    """Turns SIGINT and SIGTERM into a flag while active, so `up` stops its validators in order."""

    def __init__(self) -> None:
        self.is_set = False
        self._previous: dict[int, Any] = {}

    def set(self) -> None:
        self.is_set = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.is_set:
            raise KeyboardInterrupt  # a second Ctrl-C while waiting on something slow
        self.is_set = True
        raise _Interrupted

    def __enter__(self) -> "_InterruptFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> bool:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        return exc[0] is _Interrupted


class _Interrupted(BaseException):
    """Raised from the signal handler to leave whatever `up` was waiting on."""


@devnet.command("status")
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(directory: Path, as_json: bool) -> None:
    """Each validator: running or not, RPC URL, height, peers."""
    statuses = _open(directory).status()
    if as_json:
        click.echo(json.dumps([asdict(s) for s in statuses], indent=2))
    else:
        _print_status(statuses)


@devnet.command("stop")
@DIR_OPTION
def stop(directory: Path) -> None:
    """Stop every validator (SIGTERM, then SIGKILL after 10 s)."""
    _run(lambda: _open(directory).stop_all())
    click.echo("stopped every validator")


@devnet.command("kill")
@DIR_OPTION
@click.argument("name")
def kill(directory: Path, name: str) -> None:
    """Kill one validator with SIGKILL, as a crash would."""
    _run(lambda: _open(directory).kill(name))
    click.echo(f"killed {name}")


@devnet.command("start")
@DIR_OPTION
@click.argument("name")
@click.option("--byzantine-equivocate", is_flag=True, hidden=True, help="Devnet tests: the validator signs conflicting prevotes.")
def start(directory: Path, name: str, byzantine_equivocate: bool) -> None:
    """Start one validator (it catches up from its peers)."""
    pid = _run(lambda: _open(directory).start(name, byzantine=byzantine_equivocate))
    click.echo(f"started {name} (pid {pid})")


@devnet.command("restart")
@DIR_OPTION
@click.argument("name")
def restart(directory: Path, name: str) -> None:
    """Stop one validator cleanly and start it again."""
    pid = _run(lambda: _open(directory).restart(name))
    click.echo(f"restarted {name} (pid {pid})")


@devnet.command("partition")
@DIR_OPTION
@click.argument("names", nargs=-1, required=True)
def partition(directory: Path, names: tuple[str, ...]) -> None:
    """Cut the named validators off from the rest (in the nodes' peer layer; the host's firewall is untouched)."""
    plan = _run(lambda: _open(directory).partition(names))
    rest = sorted(n for n in plan if n not in names)
    click.echo(f"partitioned: {' '.join(sorted(names))} | {' '.join(rest)}")


@devnet.command("heal")
@DIR_OPTION
def heal(directory: Path) -> None:
    """Restore every link cut by `partition`."""
    _run(lambda: _open(directory).heal())
    click.echo("healed: every link allowed again")


@devnet.command("scenario")
@DIR_OPTION
@click.argument("name", required=False)
def scenario(directory: Path, name: str | None) -> None:
    """Run fault scenario NAME (kills, partitions, checks) against the running devnet; without NAME, list them."""
    by_name = {s.name: s for s in SCENARIOS}
    if name is None:
        for s in SCENARIOS:
            click.echo(f"{s.name:<24} {s.description}")
        return
    if name not in by_name:
        raise click.ClickException(f"no scenario {name!r}; there are {', '.join(by_name)}")
    net = _open(directory)
    try:
        _run(lambda: run_scenario(net, by_name[name], click.echo))
    except ScenarioFailed as exc:
        raise click.ClickException(f"FAILED: {exc}") from None
    click.echo(f"{name}: passed")


def _run(action: Any) -> Any:
    try:
        return action()
    except (ManifestError, DevnetTimeout) as exc:
        raise click.ClickException(str(exc)) from None


# output ----------------------------------------------------------------------------------------------------
def _print_status(statuses: list[NodeStatus]) -> None:
    rows = [("NAME", "STATE", "RPC URL", "HEIGHT", "PEERS", "BLOCK HASH")]
    for s in statuses:
        state = "running" if s.running and s.error is None else ("starting" if s.running else "stopped")
        rows.append(
            (s.name, state, s.rpc_url, "-" if s.height is None else str(s.height), "-" if s.peers is None else str(s.peers), short(s.block_hash))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


def _print_usage(net: Devnet) -> None:
    m = net.manifest
    env = m.environment()
    click.echo("")
    click.echo(f"chain id   {m.chain_id}")
    click.echo(f"keyring    {m.keyring}  (UNENCRYPTED demo keys: {', '.join(n for names in m.keys.values() for n in names)})")
    click.echo("use the CLI against it:")
    click.echo(f"  export HEARTH_HOME={env['HEARTH_HOME']} HEARTH_RPC={env['HEARTH_RPC']}")
    click.echo("  hearth wallet balance alice")
    click.echo("  hearth wallet send --from alice --to bob --amount 5 --wait")
    click.echo("  hearth member register NAME --node north --signer north-council-1 --signer north-council-2 --wait")
    click.echo("  hearth housing apply --from alice --household 2 --wait")
    click.echo("  hearth quota show alice water      (members' first allowance is for period 1)")


def _print_layout(net: Devnet) -> None:
    m = net.manifest
    click.echo(f"chain id  {m.chain_id}")
    click.echo(f"genesis   {Path(m.directory) / 'genesis.json'}")
    for e in m.validators:
        click.echo(f"{e.name}  home {e.home}  p2p {e.p2p_address}  rpc {e.rpc_url}")
    if not m.local:
        click.echo("copy each home to its machine and run `hearth node start --home HOME` there (see README, \"Running on several machines\")")

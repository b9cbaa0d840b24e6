"""`hearth housing add-unit|apply|withdraw|show|release|modify|queue` (specs/housing.md).

Units are added by their node's council (--signer, repeatedly). Everything else about a right is
done by its holder alone; release and modify find the holder's unit themselves unless told.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.errors import CliError
from cli.keys import PASSWORD_FILE
from cli.output import emit, table
from cli.settings import Settings, hearth_command
from cli.tx_commands import NODE, SIGNERS, WAIT, send_council_action, send_from_key
from ledger.crypto import sha256

FROM = click.option("--from", "name", required=True, metavar="NAME", help="Your key.")
UNIT_OF_HOLDER = [
    click.option("--node", "node_id", metavar="ID", help="The unit's node (default: where NAME holds a right)."),
    click.option("--unit", "unit_id", metavar="ID", help="The unit (default: the one NAME holds)."),
]


def unit_options(f: Any) -> Any:
    for option in reversed(UNIT_OF_HOLDER):
        f = option(f)
    return f


@click.group("housing")
def housing() -> None:
    """Homes: units, applications, rights."""


@housing.command("add-unit")
@NODE
@click.option("--unit", "unit_id", required=True, metavar="ID", help="The new unit's id within the node.")
@click.option("--capacity", required=True, type=click.IntRange(1, 255), help="How many persons it houses.")
@click.option("--description", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="The published description; its SHA-256 goes on the chain.")
@click.option("--attributes", metavar="HASH", help="The description's SHA-256, if you have it rather than the file.")
@SIGNERS
@WAIT
@PASSWORD_FILE
@hearth_command()
def housing_add_unit(
    settings: Settings, node_id: str, unit_id: str, capacity: int, description: Path | None, attributes: str | None,
    signers: tuple[str, ...], wait: bool, password_file: Path | None,
) -> None:
    """The council of --node adds a housing unit; it goes at once to the applicant the rule picks."""
    if (description is None) == (attributes is None):
        raise CliError("give either --description FILE or --attributes HASH")
    if description is not None:
        digest = sha256(description.read_bytes())
    else:
        assert attributes is not None
        try:
            digest = bytes.fromhex(attributes.removeprefix("0x"))
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise CliError("--attributes must be a SHA-256 hash: 64 hex characters")
    send_council_action(settings, node_id, signers, password_file, "unit_add", wait, unit=unit_id, capacity=capacity, attributes=digest)


def needs_bitmask(settings: Settings, needs: str) -> int:
    """Need flags by name (comma-separated) to the bitmask: bit i is the i-th flag genesis defines."""
    names = [n.strip() for n in needs.split(",") if n.strip()]
    if not names:
        return 0
    flags = settings.client().call("params")["rules"]["need_flags"]
    mask = 0
    for name in names:
        if name not in flags:
            raise CliError(f"{name!r} is not a need flag", f"this chain's flags: {', '.join(flags) or 'none'}")
        mask |= 1 << flags.index(name)
    return mask


@housing.command("apply")
@FROM
@click.option("--household", required=True, type=click.IntRange(1, 255), help="How many persons.")
@click.option("--needs", default="", metavar="FLAG,...", help="Need flags that apply (see `hearth chain params`).")
@WAIT
@PASSWORD_FILE
@hearth_command()
def housing_apply(settings: Settings, name: str, household: int, needs: str, wait: bool, password_file: Path | None) -> None:
    """Apply for a home in your node; the published rule allocates it."""
    send_from_key(settings, name, password_file, "housing_apply", wait, household=household, needs=needs_bitmask(settings, needs))


@housing.command("withdraw")
@FROM
@WAIT
@PASSWORD_FILE
@hearth_command()
def housing_withdraw(settings: Settings, name: str, wait: bool, password_file: Path | None) -> None:
    """Take back your waiting application."""
    send_from_key(settings, name, password_file, "housing_withdraw", wait)


def held_unit(settings: Settings, name: str, node_id: str | None, unit_id: str | None) -> tuple[str, str]:
    if node_id is not None and unit_id is not None:
        return node_id, unit_id
    address = settings.keystore.info(name).address
    right = settings.client().call("housing_right", address=address.hex())
    if right is None or right.get("role") != "holder":
        raise CliError(f"{name!r} holds no housing right", "pass --node and --unit to name the unit")
    return node_id or right["node"], unit_id or right["unit"]


@housing.command("release")
@FROM
@unit_options
@WAIT
@PASSWORD_FILE
@hearth_command()
def housing_release(settings: Settings, name: str, node_id: str | None, unit_id: str | None, wait: bool, password_file: Path | None) -> None:
    """Give up your housing right (only its holder can); the unit goes to the next applicant."""
    node_id, unit_id = held_unit(settings, name, node_id, unit_id)
    send_from_key(settings, name, password_file, "housing_release", wait, node=node_id, unit=unit_id)


@housing.command("modify")
@FROM
@unit_options
@click.option("--kind", required=True, metavar="KIND", help="A modification kind genesis defines (see `hearth chain params`).")
@click.option("--area-delta", required=True, type=int, help="The change of area it makes (may be negative).")
@WAIT
@PASSWORD_FILE
@hearth_command()
def housing_modify(
    settings: Settings, name: str, node_id: str | None, unit_id: str | None, kind: str, area_delta: int, wait: bool, password_file: Path | None
) -> None:
    """Adapt your home within the node's published guidelines."""
    node_id, unit_id = held_unit(settings, name, node_id, unit_id)
    send_from_key(settings, name, password_file, "housing_modify", wait, node=node_id, unit=unit_id, kind=kind, area_delta=area_delta)


def describe_right(right: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("unit", f"{right['unit']} of {right['node']}"),
        ("holder", right["holder"]),
        ("co-holders", ", ".join(right["co_holders"]) or "none"),
        ("household", str(right["household"])),
        ("granted", f"at height {right['granted_height']} (period {right['granted_period']})"),
    ]
    for event in right["history"]:
        extra = f" {event['kind']} {event['area_delta']:+d}" if event["kind"] else ""
        rows.append(("history", f"height {event['height']}: {event['event']}{extra}"))
    return rows


@housing.command("show")
@click.argument("who", required=False, metavar="[NAME|ADDRESS]")
@click.option("--node", "node_id", metavar="ID", help="With --unit: show a unit instead.")
@click.option("--unit", "unit_id", metavar="ID")
@hearth_command()
def housing_show(settings: Settings, who: str | None, node_id: str | None, unit_id: str | None) -> None:
    """The right NAME|ADDRESS holds or co-holds, or the unit --node/--unit."""
    client = settings.client()
    if who is not None:
        address = settings.keystore.resolve_address(who)
        right = client.call("housing_right", address=address.hex())
        if right is None:
            emit(settings.as_json, None, f"{address.hex()} holds no housing right")
        else:
            emit(settings.as_json, right, table([("role", right["role"].replace("_", "-")), *describe_right(right)]))
        return
    if node_id is None or unit_id is None:
        raise CliError("name a person, or a unit with --node and --unit")
    unit = client.call("housing_unit", node=node_id, unit=unit_id)
    rows = [
        ("unit", f"{unit['unit']} of {unit['node']}"),
        ("capacity", str(unit["capacity"])),
        ("description", unit["attributes"]),
        ("area change", f"{unit['area_delta']:+d}"),
        ("vacant", "yes" if unit["vacant"] else "no"),
    ]
    if unit["right"] is not None:
        rows += describe_right(unit["right"])
    emit(settings.as_json, unit, table(rows))


@housing.command("queue")
@click.argument("node_id", metavar="NODE")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@hearth_command()
def housing_queue(settings: Settings, node_id: str, limit: int) -> None:
    """NODE's waiting applications in the order the published rule serves them."""
    answer = settings.client().call("housing_queue", node=node_id, limit=limit)
    lines = [f"{answer['waiting']} waiting, {answer['vacant']} vacant units in {node_id}"]
    for i, a in enumerate(answer["queue"], 1):
        lines.append(f"{i:>4}. {a['address']}  household {a['household']:>2}  needs {a['need_level']}  since period {a['applied_period']}")
    emit(settings.as_json, answer, lines)

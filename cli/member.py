"""`hearth member register|remove|leave|show` (specs/membership.md).

Registering and removing are council actions: sent from the node's council account and signed by
at least its threshold of council keys, each given with --signer.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.keys import PASSWORD_FILE
from cli.output import emit, table
from cli.settings import Settings, hearth_command
from cli.tx_commands import NODE, SIGNERS, WAIT, send_council_action, send_from_key

WHO = click.argument("who", metavar="NAME|ADDRESS")


@click.group("member")
def member() -> None:
    """Membership of a city-state node."""


def council_member_command(command_name: str, tx_type: str, summary: str) -> None:
    """`member register` and `member remove` differ only in the transaction type they send."""

    @member.command(command_name, help=summary)
    @WHO
    @NODE
    @SIGNERS
    @WAIT
    @PASSWORD_FILE
    @hearth_command()
    def command(settings: Settings, who: str, node_id: str, signers: tuple[str, ...], wait: bool, password_file: Path | None) -> None:
        address = settings.keystore.resolve_address(who)
        send_council_action(settings, node_id, signers, password_file, tx_type, wait, member=address)


council_member_command("register", "member_add", "The council of --node registers NAME|ADDRESS as a member.")
council_member_command("remove", "member_remove", "The council of --node ends NAME|ADDRESS's membership (not a housing right holder's).")


@member.command("leave")
@click.argument("name")
@WAIT
@PASSWORD_FILE
@hearth_command()
def member_leave(settings: Settings, name: str, wait: bool, password_file: Path | None) -> None:
    """Key NAME leaves its node (its housing right and application end with it)."""
    send_from_key(settings, name, password_file, "member_leave", wait)


@member.command("show")
@WHO
@hearth_command()
def member_show(settings: Settings, who: str) -> None:
    """NAME|ADDRESS's membership, residence and housing application."""
    address = settings.keystore.resolve_address(who)
    info = settings.client().call("member", address=address.hex())
    if info is None:
        emit(settings.as_json, None, f"{address.hex()} is not a member of any node")
        return
    residence = info["residence"]
    application = info["application"]
    rows = [
        ("address", info["address"]),
        ("node", info["node"]),
        ("member since", f"period {info['joined_period']}"),
        ("home", "none" if residence is None else f"unit {residence['unit']} of {residence['node']} ({residence['role'].replace('_', '-')})"),
        ("application", "none" if application is None else f"household {application['household']}, waiting since period {application['applied_period']}"),
    ]
    emit(settings.as_json, info, table(rows))

"""`hearth quota show|trade|consume` (specs/quotas.md). Quantities are integers in the resource's
own unit (litres, kWh, ...); prices are coins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.errors import CliError
from cli.keys import PASSWORD_FILE
from cli.output import emit, format_coins, table
from cli.settings import COINS, Settings, hearth_command
from cli.tx_commands import WAIT, send_from_key

RESOURCE = click.option("--resource", required=True, metavar="ID", help="The resource (see `hearth chain params`).")
QUANTITY = click.option("--amount", required=True, type=click.IntRange(1), help="How much, in the resource's unit.")


@click.group("quota")
def quota() -> None:
    """Allowances of scarce resources: see, trade, record consumption."""


@quota.command("show")
@click.argument("who", metavar="NAME|ADDRESS")
@click.argument("resource", metavar="RESOURCE")
@hearth_command()
def quota_show(settings: Settings, who: str, resource: str) -> None:
    """NAME|ADDRESS's quota of RESOURCE this period."""
    address = settings.keystore.resolve_address(who)
    info = settings.client().call("quota", address=address.hex(), resource=resource)
    if info is None:
        emit(settings.as_json, None, f"{address.hex()} is not a member of any node, so it has no quota")
        return
    unit = info["unit"]
    rows = [
        ("member", f"{info['address']} ({info['node']})"),
        ("resource", f"{info['resource']}, period {info['period']}"),
        ("allowance", f"{info['allowance']} {unit}"),
        ("holding", f"{info['holding']} {unit} (tradable between {info['floor']} and {info['ceiling']})"),
        ("consumed", f"{info['consumed']} {unit}"),
        ("left", f"{info['left']} {unit}"),
    ]
    emit(settings.as_json, info, table(rows))


@quota.command("trade")
@click.option("--from", "seller", required=True, metavar="NAME", help="The seller's key.")
@click.option("--to", "buyer", required=True, metavar="NAME|ADDRESS", help="The buyer.")
@RESOURCE
@QUANTITY
@click.option("--price", type=COINS, help="Coins the buyer pays; the buyer must then sign too (--cosign).")
@click.option("--cosign", metavar="NAME", help="The buyer's key, for a trade with a price.")
@WAIT
@PASSWORD_FILE
@hearth_command()
def quota_trade(
    settings: Settings, seller: str, buyer: str, resource: str, amount: int, price: int | None, cosign: str | None, wait: bool, password_file: Path | None
) -> None:
    """Give AMOUNT of your RESOURCE quota this period to another member of your node."""
    to = settings.keystore.resolve_address(buyer)
    fields: dict[str, Any] = {"resource": resource, "to": to, "amount": amount}
    if price:
        if cosign is None:
            raise CliError(
                f"a trade for {format_coins(price)} coins needs the buyer's signature too",
                "pass --cosign BUYER_KEY, or `hearth tx build quota_trade ...` and have both sign with `hearth tx sign`",
            )
        if settings.keystore.info(cosign).address != to:
            raise CliError(f"--cosign {cosign!r} is not the buyer's key")
        fields["price"] = price
    elif cosign is not None:
        raise CliError("--cosign is only for a trade with a price")
    send_from_key(settings, seller, password_file, "quota_trade", wait, cosigners=(cosign,) if cosign else (), **fields)


@quota.command("consume")
@click.option("--provider", required=True, metavar="NAME", help="The provider's key (a registered utility).")
@click.option("--member", "member_who", required=True, metavar="NAME|ADDRESS", help="The member who consumed.")
@RESOURCE
@QUANTITY
@WAIT
@PASSWORD_FILE
@hearth_command()
def quota_consume(settings: Settings, provider: str, member_who: str, resource: str, amount: int, wait: bool, password_file: Path | None) -> None:
    """As a provider, record that a member consumed AMOUNT of RESOURCE."""
    address = settings.keystore.resolve_address(member_who)
    send_from_key(settings, provider, password_file, "quota_consume", wait, member=address, resource=resource, amount=amount)

"""`hearth wallet balance|send|history|proof`: what a member does with their money."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.errors import CliError
from cli.keys import PASSWORD_FILE
from cli.output import emit, format_coins, format_signed_coins, short, table
from cli.settings import COINS, Settings, hearth_command
from cli.tx_commands import WAIT, send_from_key
from consensus.rpc_methods import proof_from_json
from ledger.merkle import verify_proof
from ledger.records import account_key
from ledger.state import decode_record

WHO = click.argument("who", metavar="NAME|ADDRESS")


@click.group("wallet")
def wallet() -> None:
    """Balances, payments and history."""


@wallet.command("balance")
@WHO
@click.option("--periods", type=click.IntRange(0, 10_000), default=30, show_default=True, help="Project the balance this many periods ahead.")
@hearth_command()
def wallet_balance(settings: Settings, who: str, periods: int) -> None:
    """Balance of NAME|ADDRESS now, and after PERIODS periods of demurrage and UBI if nothing else happens."""
    address = settings.keystore.resolve_address(who)
    account = settings.client().call("account", address=address.hex(), project_periods=periods or None)
    member = account["member"]
    rows = [
        ("address", account["address"]),
        ("balance", f"{format_coins(account['balance'])} coins (period {account['period']}, height {account['height']})"),
        (
            "settling",
            f"{format_signed_coins(-account['pending_demurrage'])} demurrage, {format_signed_coins(account['pending_ubi'])} UBI"
            " (already in the balance above)",
        ),
        ("member", "no" if member is None else f"yes, since period {member['joined_period']}"),
        ("nonce", str(account["nonce"])),
    ]
    if "projection" in account:
        p = account["projection"]
        change = p["balance"] - account["balance"]
        rows.append((f"in {periods} periods", f"{format_coins(p['balance'])} coins ({format_signed_coins(change)}) if nothing else happens"))
    emit(settings.as_json, account, table(rows))


@wallet.command("send")
@click.option("--from", "sender", required=True, metavar="NAME", help="The key to pay from.")
@click.option("--to", "recipient", required=True, metavar="NAME|ADDRESS", help="Who to pay.")
@click.option("--amount", required=True, type=COINS, help="How much, in coins (up to 6 decimals).")
@click.option("--memo", default=None, help="A note that goes on the chain (public).")
@WAIT
@PASSWORD_FILE
@hearth_command()
def wallet_send(settings: Settings, sender: str, recipient: str, amount: int, memo: str | None, wait: bool, password_file: Path | None) -> None:
    """Pay AMOUNT coins from key NAME to NAME|ADDRESS."""
    to = settings.keystore.resolve_address(recipient)
    if to == settings.keystore.info(sender).address:
        raise CliError("sender and recipient are the same account")
    fields: dict[str, Any] = {"to": to, "amount": amount}
    if memo is not None:
        fields["memo"] = memo
    send_from_key(settings, sender, password_file, "transfer", wait, **fields)


def describe_history_entry(address: str, entry: dict[str, Any]) -> str:
    body = entry["body"]
    where = f"{entry['height']:>8}.{entry['index']:<4}"
    if body["type"] == "transfer":
        if body["from"] == address:
            what = f"sent     {format_coins(body['amount']):>18} to   {short(body['to'])}"
        else:
            what = f"received {format_coins(body['amount']):>18} from {short(body['from'])}"
    else:
        others = ", ".join(f"{k}={short(v) if isinstance(v, str) else v}" for k, v in body.items() if k not in ("type", "chain", "nonce"))
        what = f"{body['type']:<8} {others}"
    return f"{where}  {what}  {short(entry['hash'])}"


@wallet.command("history")
@WHO
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--before", metavar="HEIGHT.INDEX", help="Only transactions before this position (to page back).")
@hearth_command()
def wallet_history(settings: Settings, who: str, limit: int, before: str | None) -> None:
    """Committed transactions that name NAME|ADDRESS, newest first."""
    address = settings.keystore.resolve_address(who)
    before_height = before_index = None
    if before is not None:
        height_text, _, index_text = before.partition(".")
        if not height_text.isdigit() or not (index_text or "0").isdigit():
            raise CliError(f"--before {before!r}: write HEIGHT or HEIGHT.INDEX, as history prints them")
        before_height, before_index = int(height_text), int(index_text or "0")
    answer = settings.client().call("account_txs", address=address.hex(), limit=limit, before_height=before_height, before_index=before_index)
    entries = answer["txs"]
    lines = [describe_history_entry(address.hex(), e) for e in entries] or ["no transactions"]
    if len(entries) == limit:
        last = entries[-1]
        lines.append(f"more: --before {last['height']}.{last['index']}")
    emit(settings.as_json, answer, [f"{'block.tx':>13}  what", *lines])


@wallet.command("proof")
@WHO
@hearth_command()
def wallet_proof(settings: Settings, who: str) -> None:
    """Fetch NAME|ADDRESS's stored account entry with its Merkle proof, and check the proof here."""
    address = settings.keystore.resolve_address(who)
    answer = settings.client().call("proof", address=address.hex())
    key = account_key(address)
    try:
        value = None if answer["value"] is None else bytes.fromhex(answer["value"])
        proof = proof_from_json(answer["proof"])
        verified = verify_proof(bytes.fromhex(answer["state_root"]), key, value, proof)
        account = None if value is None else decode_record(key, value)
    except (KeyError, TypeError, ValueError):
        verified = False
    if not verified:
        raise CliError("the node's proof does not verify against the state root it reported", "do not trust this node's answer")
    stored = "no entry (the account is empty)" if account is None else (
        f"{format_coins(account.balance)} coins, nonce {account.nonce}, settled at period {account.settled_period}"
    )
    rows = [("address", address.hex()), ("height", str(answer["height"])), ("state root", answer["state_root"]), ("stored", stored), ("proof", "verified")]
    emit(settings.as_json, {**answer, "verified": True}, table(rows))

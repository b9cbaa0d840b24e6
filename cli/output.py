"""How the CLI shows things: amounts in coins with six decimals for people, JSON for machines."""

from __future__ import annotations

import datetime
import json
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from ledger.constants import MAX_AMOUNT, UNITS_PER_COIN

COIN_DECIMALS = 6
_COINS = re.compile(r"^(\d+)(?:\.(\d{1,6}))?$")


def format_coins(units: int) -> str:
    """Base units as coins with six decimals: 1500000 -> '1.500000'."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), UNITS_PER_COIN)
    return f"{sign}{whole}.{frac:0{COIN_DECIMALS}d}"


def format_signed_coins(units: int) -> str:
    return ("+" if units >= 0 else "") + format_coins(units)


def parse_coins(text: str) -> int:
    """Coins as typed by a person ('12', '0.5', '3.000001') to base units; ValueError if not."""
    match = _COINS.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an amount of coins: use digits with at most {COIN_DECIMALS} decimals, like 12.5")
    whole, frac = match.group(1), (match.group(2) or "").ljust(COIN_DECIMALS, "0")
    units = int(whole) * UNITS_PER_COIN + int(frac)
    if units <= 0:
        raise ValueError("the amount must be more than zero")
    if units > MAX_AMOUNT:
        raise ValueError("the amount is larger than any the ledger allows")
    return units


def format_time_ms(time_ms: int) -> str:
    return datetime.datetime.fromtimestamp(time_ms / 1000, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(hex_text: str | None, keep: int = 12) -> str:
    if not hex_text:
        return "-"
    return hex_text if len(hex_text) <= keep else hex_text[:keep] + "…"


def emit(as_json: bool, data: Any, lines: Sequence[str] | str = ()) -> None:
    """Print `data` as JSON, or `lines` for a person."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif isinstance(lines, str):
        click.echo(lines)
    else:
        for line in lines:
            click.echo(line)


def table(rows: Sequence[tuple[str, str]]) -> list[str]:
    """Label/value pairs aligned in two columns."""
    width = max((len(label) for label, _ in rows), default=0)
    return [f"{label.ljust(width)}  {value}" for label, value in rows]


@contextmanager
def spinner(enabled: bool, message: str) -> Iterator[None]:
    """A spinner on stderr while the block runs, when stderr is a terminal and output is for people."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    done = threading.Event()

    def spin() -> None:
        frames = "|/-\\"
        i = 0
        while not done.wait(0.1):
            sys.stderr.write(f"\r{frames[i % len(frames)]} {message}")
            sys.stderr.flush()
            i += 1
        sys.stderr.write("\r" + " " * (len(message) + 2) + "\r")
        sys.stderr.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()

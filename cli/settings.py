"""The options every command takes (--rpc, --home, --json) and the decorator that adds them.

Each option also reads its environment variable (HEARTH_RPC, HEARTH_HOME). If the root `hearth`
group ever takes the same options (`hearth --json status`), a value given there is used when the
command itself was not given one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from cli.errors import CliError, user_errors
from cli.keystore import Keystore
from cli.rpc_client import DEFAULT_RPC_URL, RpcClient
from cli.output import parse_coins

DEFAULT_HOME = "~/.hearth"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Settings:
    rpc_url: str
    home: Path
    as_json: bool

    def client(self, timeout_s: float = 15.0) -> RpcClient:
        return RpcClient(self.rpc_url, timeout_s)

    @property
    def keystore(self) -> Keystore:
        return Keystore(self.home)


def _from_root(ctx: click.Context, name: str, value: Any) -> Any:
    """The command's value unless it is a default and the root group was given one."""
    root = ctx.find_root()
    if root is ctx or ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
        return value
    if name in root.params and root.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
        return root.params[name]
    return value


def hearth_command(rpc: bool = True) -> Callable[[F], F]:
    """Add --home and --json (and --rpc unless rpc=False), pass a Settings as the first argument,
    and turn user errors into one-line messages."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, home: str, as_json: bool, rpc_url: str = DEFAULT_RPC_URL, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            settings = Settings(
                rpc_url=_from_root(ctx, "rpc_url", rpc_url),
                home=Path(_from_root(ctx, "home", home)).expanduser(),
                as_json=bool(_from_root(ctx, "as_json", as_json)),
            )
            with user_errors(settings.as_json):
                return f(settings, *args, **kwargs)

        command = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(wrapper)
        command = click.option(
            "--home", envvar="HEARTH_HOME", default=DEFAULT_HOME, show_default=True, metavar="DIR", help="Where keys live (env HEARTH_HOME)."
        )(command)
        if rpc:
            command = click.option(
                "--rpc", "rpc_url", envvar="HEARTH_RPC", default=DEFAULT_RPC_URL, show_default=True, metavar="URL", help="The node's JSON-RPC address (env HEARTH_RPC)."
            )(command)
        return command  # type: ignore[return-value]

    return decorate


class CoinsType(click.ParamType):
    """An amount typed in coins (up to six decimals), converted to base units."""

    name = "COINS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_coins(str(value))
        except ValueError as exc:
            raise CliError(f"--{param.name if param else 'amount'}: {exc}") from None


COINS = CoinsType()

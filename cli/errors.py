"""User errors: one line saying what went wrong and what to do, a non-zero exit, no traceback.

Exit codes (stable, for scripts): 1 a user error (bad input, unknown key, wrong password),
2 a usage error (click's own), 3 the node is unreachable or did not answer properly,
4 the node refused the request (a ledger rejection carries its code), 5 submitted but not
committed within the wait.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from cli.keystore import KeystoreError
from cli.rpc_client import NodeUnreachable, RpcCallError, RpcClientError, RpcProtocolError
from consensus.rpc_methods import ErrorCode
from ledger import Code, Rejected


class ExitCode(enum.IntEnum):
    USER_ERROR = 1
    USAGE = 2
    UNREACHABLE = 3
    REFUSED = 4
    NOT_COMMITTED = 5


class CliError(click.ClickException):
    """An error the user can act on. Printed as one line; `--json` prints it as one JSON object."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = ExitCode.USER_ERROR, data: Any = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = int(exit_code)
        self.data = data
        self.as_json = False

    def format_message(self) -> str:
        text = self.message if self.hint is None else f"{self.message}; {self.hint}"
        return " ".join(text.split())  # one line, whatever a message held

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            error: dict[str, Any] = {"message": self.message, "exit_code": self.exit_code}
            if self.hint:
                error["hint"] = self.hint
            if self.data is not None:
                error["data"] = self.data
            click.echo(json.dumps({"error": error}), err=True)
        else:
            click.echo(f"error: {self.format_message()}", err=True)


LEDGER_CODE_NAMES = {c.number: c.name for c in Code}

HINTS = {
    Code.NONCE_STALE.name: "it was already submitted; see `hearth wallet history`",
    Code.NONCE_FUTURE.name: "an earlier transaction of this account is still pending or missing",
    Code.INSUFFICIENT_FUNDS.name: "check `hearth wallet balance`",
    Code.WRONG_CHAIN.name: "the transaction was built for another chain; rebuild it against this node",
    Code.BAD_SIGNATURE.name: "sign again with the right key",
    Code.UNAUTHORIZED.name: "sign with the key(s) that may act for this account (--signer)",
    "MEMPOOL_FULL": "the node is busy; retry after the next block",
}


def from_rpc_error(exc: RpcCallError) -> CliError:
    data = exc.data if isinstance(exc.data, dict) else {}
    name = data.get("code") if isinstance(data.get("code"), str) else LEDGER_CODE_NAMES.get(exc.code)
    if exc.code == ErrorCode.NOT_COMMITTED:
        tx_hash = data.get("hash", "?")
        return CliError(f"submitted as {tx_hash} but not committed yet", f"check later with `hearth tx show {tx_hash}` (on a node that keeps the transaction index)", ExitCode.NOT_COMMITTED, data)
    if exc.code == ErrorCode.RATE_LIMITED:
        return CliError("the node is rate limiting this client", "wait a moment and retry", ExitCode.REFUSED)
    if exc.code == ErrorCode.NO_TX_INDEX:
        return CliError("this node keeps no transaction index", "ask a node that does: pass --rpc URL or set HEARTH_RPC", ExitCode.REFUSED)
    if name is not None:
        return CliError(f"rejected: {name} ({exc.code}): {exc.message}", HINTS.get(name), ExitCode.REFUSED, data)
    return CliError(f"the node refused the request: {exc.message} (code {exc.code})", None, ExitCode.REFUSED, exc.data)


@contextmanager
def user_errors(as_json: bool = False) -> Iterator[None]:
    """Turn the errors a user can cause into CliErrors; anything else is a bug and keeps its traceback."""
    try:
        try:
            yield
        except NodeUnreachable as exc:
            raise CliError(str(exc), "is a node running there? pass --rpc URL or set HEARTH_RPC", ExitCode.UNREACHABLE) from None
        except RpcCallError as exc:
            raise from_rpc_error(exc) from None
        except RpcProtocolError as exc:
            raise CliError(str(exc), "is --rpc pointing at a Hearth node?", ExitCode.UNREACHABLE) from None
        except RpcClientError as exc:
            raise CliError(str(exc)) from None
        except KeystoreError as exc:
            raise CliError(str(exc), exc.hint) from None
        except Rejected as exc:
            raise CliError(f"invalid transaction: {exc.code.name} ({exc.code.number}): {exc.message}", HINTS.get(exc.code.name)) from None
    except CliError as exc:
        exc.as_json = as_json
        raise

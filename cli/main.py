"""`hearth`: the command group. Subcommands live in their own modules and register here."""

from __future__ import annotations

import click

from cli.audit.commands import audit
from cli.chain import chain, status
from cli.housing import housing
from cli.keys import keys
from cli.member import member
from cli.node_commands import node
from cli.quota import quota
from cli.tx_commands import tx
from cli.wallet import wallet
from devnet.commands import devnet


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hearth")
@click.option("--rpc", "rpc_url", metavar="URL", default=None, help="The node's JSON-RPC address for every command below (or each command's --rpc, env HEARTH_RPC).")
@click.option("--home", metavar="DIR", default=None, help="Where keys live, for every wallet command below (or each command's --home, env HEARTH_HOME).")
@click.option("--json", "as_json", is_flag=True, default=False, help="Machine-readable JSON from every command below.")
def main(rpc_url: str | None, home: str | None, as_json: bool) -> None:
    """Hearth: a fixed-supply, demurrage currency with UBI, quotas and housing rights, on a BFT ledger.

    The global options apply to the wallet and chain commands; a command's own option wins."""


# wallet and chain commands (cli/keys.py, wallet.py, member.py, quota.py, housing.py, tx_commands.py, chain.py)
main.add_command(status)
main.add_command(keys)
main.add_command(wallet)
main.add_command(member)
main.add_command(quota)
main.add_command(housing)
main.add_command(tx)
main.add_command(chain)
main.add_command(node)  # cli/node_commands.py
main.add_command(devnet)  # devnet/commands.py
main.add_command(audit)  # cli/audit/commands.py

if __name__ == "__main__":
    main()

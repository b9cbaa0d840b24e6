"""`hearth`: the command group. Subcommands live in their own modules and register here."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hearth")
def main() -> None:
    """Hearth: a fixed-supply, demurrage currency with UBI, quotas and housing rights, on a BFT ledger."""


if __name__ == "__main__":
    main()

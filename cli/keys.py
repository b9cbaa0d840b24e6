"""`hearth keys new|list|show|import|export`: local keys, encrypted at rest (see cli/keystore.py).

Passwords come from a hidden prompt or the first line of --password-file. They are never printed,
logged or passed on a command line.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.errors import CliError
from cli.keystore import UNENCRYPTED_WARNING, KeyInfo, is_encrypted, parse_key_file, write_private_file
from cli.output import emit, table
from cli.settings import Settings, hearth_command
from ledger.crypto import Keypair

PASSWORD_FILE = click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the password from the first line of this file instead of prompting.",
)


def read_password(prompt: str, password_file: Path | None, confirm: bool = False) -> str:
    if password_file is not None:
        try:
            with open(password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read the password file {password_file}: {getattr(exc, 'strerror', None) or exc}") from None
    else:
        password = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, default="", show_default=False, err=True)
    if not password:
        raise CliError("the password is empty", "give one at the prompt or in --password-file")
    return password


def unlock(settings: Settings, name: str, password_file: Path | None) -> Keypair:
    """The keypair of key `name`, asking for its password if it is encrypted."""
    info = settings.keystore.info(name)
    if not info.encrypted:
        return settings.keystore.load(name, None)
    password = read_password(f"Password for key {name!r}", password_file)
    return settings.keystore.load(name, password)


def key_json(info: KeyInfo) -> dict[str, object]:
    return {"name": info.name, "address": info.address.hex(), "encrypted": info.encrypted, "path": str(info.path)}


def warn_unencrypted(info: KeyInfo) -> None:
    click.secho(f"WARNING: key {info.name!r} is stored UNENCRYPTED at {info.path}.", fg="red", bold=True, err=True)
    click.secho(f"WARNING: {UNENCRYPTED_WARNING}", fg="red", bold=True, err=True)


def new_key_password(insecure: bool, password_file: Path | None) -> str | None:
    if insecure:
        if password_file is not None:
            raise CliError("--insecure-unencrypted and --password-file contradict each other")
        return None
    return read_password("Password for the new key", password_file, confirm=True)


INSECURE = click.option(
    "--insecure-unencrypted",
    "insecure",
    is_flag=True,
    help="Store the key WITHOUT encryption. For devnet demo keys only: anyone who can read the file can spend.",
)


@click.group("keys")
def keys() -> None:
    """Manage local keys (encrypted at rest with Argon2id and SecretBox)."""


@keys.command("new")
@click.argument("name")
@PASSWORD_FILE
@INSECURE
@hearth_command(rpc=False)
def keys_new(settings: Settings, name: str, password_file: Path | None, insecure: bool) -> None:
    """Make a new key NAME."""
    settings.keystore.path(name)  # check the name before asking for a password
    password = new_key_password(insecure, password_file)
    info = settings.keystore.create(name, Keypair.generate(), password)
    if not info.encrypted:
        warn_unencrypted(info)
    emit(settings.as_json, key_json(info), table([("name", info.name), ("address", info.address.hex()), ("file", str(info.path))]))


@keys.command("list")
@hearth_command(rpc=False)
def keys_list(settings: Settings) -> None:
    """List the keys in HOME/keys."""
    infos = settings.keystore.list()
    lines = [f"{i.name:20}  {i.address.hex()}{'' if i.encrypted else '  UNENCRYPTED'}" for i in infos]
    emit(settings.as_json, [key_json(i) for i in infos], lines or [f"no keys in {settings.keystore.dir}; make one with `hearth keys new NAME`"])


@keys.command("show")
@click.argument("name")
@hearth_command(rpc=False)
def keys_show(settings: Settings, name: str) -> None:
    """Show key NAME's address (never its secret)."""
    info = settings.keystore.info(name)
    rows = [("name", info.name), ("address", info.address.hex()), ("encrypted", "yes" if info.encrypted else "NO"), ("file", str(info.path))]
    emit(settings.as_json, key_json(info), table(rows))


@keys.command("export")
@click.argument("name")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (mode 0600) instead of stdout.")
@hearth_command(rpc=False)
def keys_export(settings: Settings, name: str, out: Path | None) -> None:
    """Export key NAME as a key file, still sealed under its password."""
    info = settings.keystore.info(name)
    data = settings.keystore.export(name)
    if not info.encrypted:
        warn_unencrypted(info)
    if out is None:
        click.echo(data.decode(), nl=False)
        return
    write_private_file(out, data)
    emit(settings.as_json, {**key_json(info), "exported_to": str(out)}, f"exported {name!r} to {out}")


@keys.command("import")
@click.argument("name")
@click.argument("key_file", required=False, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--seed-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="Import a raw seed: 64 hex characters on the first line of this file.")
@PASSWORD_FILE
@INSECURE
@hearth_command(rpc=False)
def keys_import(settings: Settings, name: str, key_file: Path | None, seed_file: Path | None, password_file: Path | None, insecure: bool) -> None:
    """Import KEY_FILE (from `keys export`; asks its password) or a raw --seed-file as key NAME."""
    settings.keystore.path(name)
    if (key_file is None) == (seed_file is None):
        raise CliError("give either a KEY_FILE or --seed-file")
    if key_file is not None:
        if insecure:
            raise CliError("--insecure-unencrypted is for --seed-file; an exported key file keeps its own protection")
        data = key_file.read_bytes()
        doc = parse_key_file(data)
        password = read_password(f"Password of {key_file.name}", password_file) if is_encrypted(doc) else None
        info = settings.keystore.import_file(name, data, password)
    else:
        assert seed_file is not None
        try:
            seed = bytes.fromhex(seed_file.read_text(encoding="utf-8").splitlines()[0].strip().removeprefix("0x"))
        except (IndexError, ValueError, UnicodeDecodeError):
            seed = b""
        if len(seed) != 32:
            raise CliError("the seed file must hold 64 hex characters (a 32-byte ed25519 seed) on its first line")
        password = new_key_password(insecure, password_file)
        info = settings.keystore.create(name, Keypair.from_seed(seed), password)
    if not info.encrypted:
        warn_unencrypted(info)
    emit(settings.as_json, key_json(info), table([("imported", info.name), ("address", info.address.hex())]))

"""`hearth tx show|build|sign|submit`, and the signing and submitting every sending command shares.

Offline and multi-party signing go through a transaction file (JSON): the chain id, the canonical
body bytes in hex (what signatures cover), the body decoded for reading, and the signatures so far.
`tx build` writes one (from the node's chain id and nonce, or --chain-id and --nonce offline),
`tx sign` adds signatures without any network, `tx submit` assembles the signed wire form and sends it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from cli.errors import CliError
from cli.keys import PASSWORD_FILE, unlock
from cli.keystore import Keystore, KeystoreError, write_private_file
from cli.output import emit, format_coins, format_time_ms, spinner, table
from cli.settings import Settings, hearth_command
from consensus.rpc_methods import to_json_ready
from ledger import Rejected, decode_tx
from ledger.authorization import compute_council_address
from ledger.crypto import Keypair, verify_signature
from ledger.encoding import EncodingError, decode, encode
from ledger.tx import COMMON_FIELDS, TX_SCHEMAS, Field, compute_sign_bytes, encode_body

TX_FILE_VERSION = 1
TX_FILE_BYTES_MAX = 256 * 1024
WAIT_TIMEOUT_MS = 30_000

WAIT = click.option("--wait", is_flag=True, help="Wait until the transaction is committed and print its block.")
SIGNERS = click.option("--signer", "signers", multiple=True, metavar="NAME", help="A council key that signs (repeat up to the threshold).")
NODE = click.option("--node", "node_id", required=True, metavar="ID", help="The city-state node.")


# sending ------------------------------------------------------------------------------------------------
def submit_signed(settings: Settings, raw: bytes, wait: bool) -> dict[str, Any]:
    """Send signed wire bytes; with `wait`, until committed. Prints the outcome and returns it."""
    tx = decode_tx(raw)  # a malformed transaction is refused here, before any network
    if wait:
        client = settings.client(timeout_s=WAIT_TIMEOUT_MS / 1000 + 10)
        with spinner(not settings.as_json, "waiting for the commit…"):
            committed = client.call("submit_tx_commit", tx=raw.hex(), timeout_ms=WAIT_TIMEOUT_MS)
        outcome = {"hash": committed["hash"], "committed": True, "height": committed["height"], "index": committed["index"]}
        emit(settings.as_json, outcome, table([("committed", f"block {committed['height']}, transaction {committed['index']}"), ("hash", committed["hash"])]))
    else:
        submitted = settings.client().call("submit_tx", tx=raw.hex())
        outcome = {"hash": submitted["hash"], "committed": False}
        emit(settings.as_json, outcome, [f"submitted   {submitted['hash']}", f"not committed yet: see `hearth tx show {submitted['hash']}`, or pass --wait"])
    if outcome["hash"] != tx.hash.hex():
        raise CliError("the node reported another hash than the transaction's", "is --rpc pointing at a Hearth node?")
    return outcome


def send_tx(settings: Settings, tx_type: str, sender: bytes, signers: list[Keypair], wait: bool, **fields: Any) -> dict[str, Any]:
    """Build a transaction against the node's chain id and the sender's next nonce, sign, submit."""
    client = settings.client()
    chain_id = client.call("status")["chain_id"]
    nonce = client.call("account", address=sender.hex())["nonce"]
    body = encode_body(tx_type, chain_id, sender, nonce, **fields)
    return submit_signed(settings, assemble_tx(body, sign_body(chain_id, body, signers)), wait)


def send_from_key(
    settings: Settings, name: str, password_file: Path | None, tx_type: str, wait: bool, cosigners: tuple[str, ...] = (), **fields: Any
) -> dict[str, Any]:
    """A transaction from key `name`'s own account, signed by it (and by `cosigners`, if any)."""
    signers = unlock_signers(settings, (name, *cosigners), password_file)
    return send_tx(settings, tx_type, signers[0].address, signers, wait, **fields)


def send_council_action(
    settings: Settings, node_id: str, signer_names: tuple[str, ...], password_file: Path | None, tx_type: str, wait: bool, **fields: Any
) -> dict[str, Any]:
    """A council action: from the node's council account, signed by council keys (at least its threshold)."""
    signers = unlock_signers(settings, signer_names, password_file)
    return send_tx(settings, tx_type, compute_council_address(node_id), signers, wait, node=node_id, **fields)


def unlock_signers(settings: Settings, names: tuple[str, ...] | list[str], password_file: Path | None) -> list[Keypair]:
    if not names:
        raise CliError("no signer given", "pass --signer NAME (repeat it for each council key)")
    if len(set(names)) != len(names):
        raise CliError("a signer is named twice")
    return [unlock(settings, name, password_file) for name in names]


def sign_body(chain_id: str, body: bytes, signers: list[Keypair]) -> dict[bytes, bytes]:
    message = compute_sign_bytes(chain_id, body)
    return {kp.public_key: kp.sign(message) for kp in signers}


def assemble_tx(body: bytes, signatures: dict[bytes, bytes]) -> bytes:
    """The signed wire form: [body bytes, [[public key, signature], ...] in ascending key order]."""
    return encode([body, [[pk, signatures[pk]] for pk in sorted(signatures)]])


# transaction files -------------------------------------------------------------------------------------
def tx_file_document(chain_id: str, body: bytes, signatures: dict[bytes, bytes]) -> dict[str, Any]:
    return {
        "hearth_tx": TX_FILE_VERSION,
        "chain_id": chain_id,
        "body": body.hex(),
        "decoded": to_json_ready(decode(body)),
        "signatures": [{"public_key": pk.hex(), "signature": signatures[pk].hex()} for pk in sorted(signatures)],
    }


def read_tx_file(path: Path) -> tuple[str, bytes, dict[bytes, bytes]]:
    """(chain id, body bytes, signatures) of a transaction file, every signature verified."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(TX_FILE_BYTES_MAX + 1))
        if not isinstance(doc, dict) or doc.get("hearth_tx") != TX_FILE_VERSION:
            raise ValueError
        chain_id, body = doc["chain_id"], bytes.fromhex(doc["body"])
        signatures = {bytes.fromhex(s["public_key"]): bytes.fromhex(s["signature"]) for s in doc["signatures"]}
        decoded = decode(body)
        if not isinstance(chain_id, str) or not isinstance(decoded, dict) or decoded.get("chain") != chain_id:
            raise ValueError
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, EncodingError):
        raise CliError(f"{path} is not a Hearth transaction file", "make one with `hearth tx build`") from None
    message = compute_sign_bytes(chain_id, body)
    for pk, sig in signatures.items():
        if not verify_signature(pk, message, sig):
            raise CliError(f"{path}: the signature by {pk.hex()} does not verify", "the file was changed after signing; build and sign it again")
    return chain_id, body, signatures


def write_tx_file(path: Path | None, doc: dict[str, Any], replace: bool = False) -> None:
    data = (json.dumps(doc, indent=2) + "\n").encode()
    if path is None:
        click.echo(data.decode(), nl=False)
    elif replace:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    else:
        try:
            write_private_file(path, data)
        except KeystoreError as exc:
            raise CliError(str(exc), exc.hint) from None


def parse_field_value(keystore: Keystore, name: str, field: Field, text: str) -> Any:
    """A field value typed as text, read as the field's checker accepts: an integer (base units
    for amounts), an address or key name, hex bytes, or text, tried in that order."""
    candidates: list[Any] = []
    if re.fullmatch(r"-?\d{1,30}", text):
        candidates.append(int(text))
    try:
        candidates.append(keystore.resolve_address(text))
    except KeystoreError:
        pass
    if re.fullmatch(r"(0x)?([0-9a-fA-F]{2})+", text):
        candidates.append(bytes.fromhex(text.removeprefix("0x")))
    candidates.append(text)
    problem = "invalid"
    for value in candidates:
        try:
            return field.check(name, value)
        except Rejected as exc:
            problem = exc.message
    raise CliError(f"--set {name}={text}: {problem}")


def build_fields(keystore: Keystore, tx_type: str, assignments: tuple[str, ...]) -> dict[str, Any]:
    schema = TX_SCHEMAS[tx_type]
    fields: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep:
            raise CliError(f"--set {assignment!r}: write FIELD=VALUE")
        if name not in schema:
            raise CliError(f"{tx_type} has no field {name!r}", f"its fields: {', '.join(schema) or 'none'}")
        fields[name] = parse_field_value(keystore, name, schema[name], text)
    missing = [n for n, f in schema.items() if f.required and n not in fields]
    if missing:
        raise CliError(f"{tx_type} needs {', '.join(missing)}", " ".join(f"--set {n}=…" for n in missing))
    return fields


# commands ------------------------------------------------------------------------------------------------
@click.group("tx")
def tx() -> None:
    """Look up, build, sign (offline, by several parties) and submit transactions."""


def describe_body(body: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for name, value in body.items():
        if name in COMMON_FIELDS:
            continue
        shown = format_coins(value) + " coins" if name == "amount" and body.get("type") == "transfer" else str(value)
        rows.append((name, shown))
    return rows


@tx.command("show")
@click.argument("tx_hash", metavar="HASH")
@hearth_command()
def tx_show(settings: Settings, tx_hash: str) -> None:
    """Show committed transaction HASH."""
    found = settings.client().call("tx", hash=tx_hash)
    if found is None:
        raise CliError(f"this node knows no committed transaction {tx_hash}", "it may still be pending; try again after the next block")
    body = found["body"]
    rows = [
        ("hash", found["hash"]),
        ("block", f"{found['height']} (transaction {found['index']}, {format_time_ms(found['time_ms'])})"),
        ("type", body["type"]),
        ("from", body["from"]),
        ("nonce", str(body["nonce"])),
        *describe_body(body),
        ("signed by", ", ".join(found["signers"])),
    ]
    emit(settings.as_json, found, table(rows))


@tx.command("build")
@click.argument("tx_type", metavar="TYPE")
@click.option("--from", "sender", required=True, metavar="NAME|ADDRESS", help="The account the transaction is from; council:NODE for a node's council.")
@click.option("--set", "assignments", multiple=True, metavar="FIELD=VALUE", help="A field of the body (repeat). Integers are base units.")
@click.option("--nonce", type=click.IntRange(0), help="The sender's nonce (default: asked of the node).")
@click.option("--chain-id", help="The chain (default: asked of the node).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the file here (default: stdout).")
@hearth_command()
def tx_build(settings: Settings, tx_type: str, sender: str, assignments: tuple[str, ...], nonce: int | None, chain_id: str | None, out: Path | None) -> None:
    """Build an unsigned transaction file of TYPE (transfer, member_add, ...)."""
    tx_type = tx_type.replace("-", "_")
    if tx_type not in TX_SCHEMAS:
        raise CliError(f"unknown transaction type {tx_type!r}", f"one of: {', '.join(sorted(TX_SCHEMAS))}")
    keystore = settings.keystore
    if sender.startswith("council:"):
        address = compute_council_address(sender.removeprefix("council:"))
    else:
        address = keystore.resolve_address(sender)
    fields = build_fields(keystore, tx_type, assignments)
    if chain_id is None:
        chain_id = settings.client().call("status")["chain_id"]
    if nonce is None:
        nonce = settings.client().call("account", address=address.hex())["nonce"]
    body = encode_body(tx_type, chain_id, address, nonce, **fields)
    write_tx_file(out, tx_file_document(chain_id, body, {}))


@tx.command("sign")
@click.argument("tx_file", metavar="FILE", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--key", "names", multiple=True, required=True, metavar="NAME", help="A key to sign with (repeat).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the signed file here (default: update FILE).")
@PASSWORD_FILE
@hearth_command(rpc=False)
def tx_sign(settings: Settings, tx_file: Path, names: tuple[str, ...], out: Path | None, password_file: Path | None) -> None:
    """Add signatures to transaction FILE, offline."""
    chain_id, body, signatures = read_tx_file(tx_file)
    signatures.update(sign_body(chain_id, body, unlock_signers(settings, names, password_file)))
    doc = tx_file_document(chain_id, body, signatures)
    write_tx_file(out or tx_file, doc, replace=out is None)
    summary = {"file": str(out or tx_file), "signers": [s["public_key"] for s in doc["signatures"]]}
    emit(settings.as_json, summary, [f"signed {out or tx_file}; signatures by:", *summary["signers"]])


@tx.command("submit")
@click.argument("tx_file", metavar="FILE", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@WAIT
@hearth_command()
def tx_submit(settings: Settings, tx_file: Path, wait: bool) -> None:
    """Submit signed transaction FILE."""
    _, body, signatures = read_tx_file(tx_file)
    if not signatures:
        raise CliError(f"{tx_file} has no signature", f"sign it first: `hearth tx sign {tx_file} --key NAME`")
    submit_signed(settings, assemble_tx(body, signatures), wait)

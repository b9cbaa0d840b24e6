"""Who may act for an account, and the nonce every action consumes.

An ordinary account is an ed25519 key and acts alone. A node's council is an account of its own,
at `compute_council_address(node_id)`, whose key nobody holds: it acts when at least `threshold` of
its council keys sign one transaction, so no single key acts alone where the threshold is above one.
Normative text: specs/monetary.md §9 (nonces) and specs/membership.md (councils).
"""

from __future__ import annotations

from ledger.crypto import sha256
from ledger.errors import Code, Rejected
from ledger.monetary import settle_account_as_read
from ledger.records import Account, Member, Node, node_key
from ledger.state import State
from ledger.tx import Tx

COUNCIL_ADDRESS_DOMAIN = b"hearth/node/"


def compute_council_address(node_id: str) -> bytes:
    """The council account of a node: SHA-256(b"hearth/node/" + node id)."""
    return sha256(COUNCIL_ADDRESS_DOMAIN + node_id.encode())


# signatures ------------------------------------------------------------------------------------
def require_sole_signer(tx: Tx, address: bytes) -> None:
    """The transaction must be signed by `address` and by nobody else."""
    if len(tx.signatures) != 1 or tx.signatures[0][0] != address:
        raise Rejected(Code.UNAUTHORIZED, "must be signed by the sending account's key alone")


def require_signers(tx: Tx, addresses: frozenset[bytes]) -> None:
    """The transaction must be signed by exactly these keys (a sender and the parties it binds)."""
    if tx.signers != addresses:
        raise Rejected(Code.UNAUTHORIZED, f"must be signed by exactly {len(addresses)} named parties")


def get_node(state: State, node_id: str) -> Node:
    """The node, or Rejected(UNKNOWN_NODE)."""
    node = state.get(node_key(node_id))
    if node is None:
        raise Rejected(Code.UNKNOWN_NODE, f"no node {node_id!r}")
    return node


def require_council(state: State, tx: Tx) -> Node:
    """A council action: `from` is the council account of the node the transaction names, every
    signer is one of its council keys, and at least `threshold` of them signed."""
    node_id = tx.body["node"]
    node = get_node(state, node_id)
    if tx.sender != compute_council_address(node_id):
        raise Rejected(Code.UNAUTHORIZED, f"a council action must be sent from the council account of {node_id!r}")
    signers = tx.signers
    if not signers <= frozenset(node.council_keys):
        raise Rejected(Code.UNAUTHORIZED, f"a signer is not on the council of {node_id!r}")
    if len(signers) < node.threshold:
        raise Rejected(Code.BELOW_THRESHOLD, f"{len(signers)} council signatures; {node_id!r} needs {node.threshold}")
    return node


def require_member(state: State, address: bytes, node_id: str | None = None) -> Member:
    """The address is a member (of `node_id`, when given), or Rejected(NOT_MEMBER)."""
    member = state.get_member(address)
    if member is None:
        raise Rejected(Code.NOT_MEMBER, f"{address.hex()[:16]}… is not a member")
    if node_id is not None and member.node != node_id:
        raise Rejected(Code.NOT_MEMBER, f"{address.hex()[:16]}… is a member of {member.node!r}, not {node_id!r}")
    return member


# nonces ----------------------------------------------------------------------------------------
def process_nonce(state: State, tx: Tx) -> Account:
    """Settle the sender, check its nonce equals the account's, and consume it."""
    account = settle_sender(state, tx)
    account = Account(account.balance, account.nonce + 1, account.settled_period)
    state.set_account(tx.sender, account)
    return account


def settle_sender(state: State, tx: Tx, period: int | None = None) -> Account:
    """The nonce checks of `process_nonce`, then the sender settled (to `period`, the head's, if
    the caller has read it); the caller writes the account with the nonce consumed (a transfer
    writes it once, with its debit)."""
    sender, nonce = tx.body["from"], tx.body["nonce"]
    account = state.get_account(sender)
    if account is None:
        if nonce != 0:
            raise Rejected(Code.NONCE_FUTURE, f"nonce {nonce}, account expects 0")
    elif nonce < account.nonce:
        raise Rejected(Code.NONCE_STALE, f"nonce {nonce} already used; account expects {account.nonce}")
    elif nonce > account.nonce:
        raise Rejected(Code.NONCE_FUTURE, f"nonce {nonce}, account expects {account.nonce}")
    return settle_account_as_read(state, sender, account, period)

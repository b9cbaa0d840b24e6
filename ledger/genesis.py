"""Genesis: the chain's parameters and the allocation of the whole, fixed supply.

A genesis file is JSON (see specs/monetary.md, "Genesis"). Its hash is SHA-256 of the canonical
msgpack of the parsed document; nodes refuse a store made from another genesis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger import encoding, housing, nodes, quotas
from ledger.constants import MAX_AMOUNT, MAX_SIGNATURES_PER_TX, RATE_SCALE, UNITS_PER_COIN
from ledger.crypto import address_from_text, sha256
from ledger.errors import Code, Rejected
from ledger.records import (
    Account,
    ChainHead,
    CommunityRules,
    Params,
    Resource,
    Totals,
    Validator,
    account_key,
    resource_key,
    validator_key,
)
from ledger.constants import MAX_VALIDATORS
from ledger.state import State
from ledger.tx import is_valid_id


MAX_GENESIS_VALIDATORS = MAX_VALIDATORS
"""A genesis whose set of validators with voting power is larger cannot form the set of height 1
(specs/consensus.md, ValidatorSet)."""


def _fail(message: str) -> Rejected:
    return Rejected(Code.GENESIS_INVALID, message)


def _int(doc: dict[str, Any], name: str, low: int = 0, high: int | None = None) -> int:
    value = doc.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"{name} must be an integer")
    if value < low or (high is not None and value > high):
        raise _fail(f"{name} must be between {low} and {high}")
    return value


def _address(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _fail(f"{what} must be a hex address")
    try:
        return address_from_text(value)
    except ValueError as exc:
        raise _fail(f"{what}: {exc}") from None


def _id(value: Any, what: str) -> str:
    if not is_valid_id(value):
        raise _fail(f"{what} must be 1 to 32 characters of [a-z0-9._-]")
    return value


def _list(doc: dict[str, Any], name: str, what: str) -> list[Any]:
    value = doc.get(name, [])
    if not isinstance(value, list):
        raise _fail(f"{what}{name} must be a list")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{what} must be an object")
    return value


def _ids(doc: dict[str, Any], name: str, most: int) -> tuple[str, ...]:
    ids = tuple(_id(v, f"housing.{name}[{i}]") for i, v in enumerate(_list(doc, name, "housing.")))
    if len(set(ids)) != len(ids) or len(ids) > most:
        raise _fail(f"housing.{name} must be at most {most} distinct ids")
    return ids


@dataclass(frozen=True)
class NodeSpec:
    """One node of the genesis document (specs/membership.md, "Genesis")."""

    id: str
    name: str
    council_keys: tuple[bytes, ...]
    threshold: int
    members: tuple[bytes, ...]
    caps: dict[str, int]
    housing_fee: int
    area_delta_max: int
    area_total_max: int
    providers: tuple[tuple[str, bytes], ...]
    units: tuple[tuple[str, int, bytes], ...]


def _parse_resources(doc: dict[str, Any]) -> dict[str, Resource]:
    resources: dict[str, Resource] = {}
    entries = _list(doc, "resources", "")
    if len(entries) > quotas.MAX_RESOURCES:
        raise _fail(f"at most {quotas.MAX_RESOURCES} resources")
    for i, entry in enumerate(entries):
        entry = _object(entry, f"resources[{i}]")
        rid = _id(entry.get("id"), f"resources[{i}].id")
        if rid in resources:
            raise _fail(f"resources[{i}] repeats the id {rid!r}")
        unit = entry.get("unit")
        if not isinstance(unit, str) or not 1 <= len(unit) <= 16:
            raise _fail(f"resources[{i}].unit must be 1 to 16 characters")
        cap_max = _int(entry, "cap_max", 0, 2**63 - 1)
        resources[rid] = Resource(
            unit=unit,
            cap_min=_int(entry, "cap_min", 0, cap_max),
            cap_max=cap_max,
            floor_percent=_int(entry, "floor_percent", 0, quotas.PERCENT),
            ceiling_percent=_int(entry, "ceiling_percent", quotas.PERCENT, 100 * quotas.PERCENT),
        )
    return resources


def _parse_rules(doc: dict[str, Any], resources: dict[str, Resource]) -> CommunityRules:
    h = _object(doc.get("housing", {}), "housing")
    return CommunityRules(
        resources=tuple(resources),
        need_flags=_ids(h, "need_flags", housing.MAX_NEED_FLAGS),
        modification_kinds=_ids(h, "modification_kinds", housing.MAX_MODIFICATION_KINDS),
        housing_fee_max=_int(h, "fee_max", 0, 2**63 - 1) if "fee_max" in h else 0,
        area_delta_max=_int(h, "area_delta_max", 0, 10**9) if "area_delta_max" in h else 0,
        area_total_max=_int(h, "area_total_max", 0, 10**9) if "area_total_max" in h else 0,
    )


def _parse_node(i: int, entry: Any, rules: CommunityRules, resources: dict[str, Resource]) -> NodeSpec:
    where = f"nodes[{i}]"
    entry = _object(entry, where)
    node_id = _id(entry.get("id"), f"{where}.id")
    name = entry.get("name", node_id)
    if not isinstance(name, str) or len(name) > 64:
        raise _fail(f"{where}.name must be text of at most 64 characters")
    council = _object(entry.get("council"), f"{where}.council")
    keys = tuple(_address(k, f"{where}.council.keys[{j}]") for j, k in enumerate(_list(council, "keys", f"{where}.council.")))
    if not 1 <= len(set(keys)) == len(keys) <= MAX_SIGNATURES_PER_TX:
        raise _fail(f"{where}.council.keys must be 1 to {MAX_SIGNATURES_PER_TX} distinct keys")
    members = tuple(_address(m, f"{where}.members[{j}]") for j, m in enumerate(_list(entry, "members", f"{where}.")))
    if len(set(members)) != len(members):
        raise _fail(f"{where}.members repeats an address")
    caps = _object(entry.get("caps", {}), f"{where}.caps")
    for rid in caps:
        if rid not in resources:
            raise _fail(f"{where}.caps names an unknown resource {rid!r}")
    full_caps = {}
    for rid, resource in resources.items():
        full_caps[rid] = _int(caps, rid, resource.cap_min, resource.cap_max) if rid in caps else resource.cap_min
    providers = []
    for j, p in enumerate(_list(entry, "providers", f"{where}.")):
        p = _object(p, f"{where}.providers[{j}]")
        rid = _id(p.get("resource"), f"{where}.providers[{j}].resource")
        if rid not in resources:
            raise _fail(f"{where}.providers[{j}] names an unknown resource {rid!r}")
        providers.append((rid, _address(p.get("address"), f"{where}.providers[{j}].address")))
    if len(set(providers)) != len(providers):
        raise _fail(f"{where}.providers repeats a provider")
    units = []
    for j, u in enumerate(_list(entry, "units", f"{where}.")):
        u = _object(u, f"{where}.units[{j}]")
        attributes = u.get("attributes", "00" * 32)
        if not isinstance(attributes, str) or len(attributes) != 64:
            raise _fail(f"{where}.units[{j}].attributes must be 64 hex characters (a SHA-256 hash)")
        try:
            attributes_hash = bytes.fromhex(attributes)
        except ValueError:
            raise _fail(f"{where}.units[{j}].attributes must be hex") from None
        if len(attributes_hash) != 32:  # fromhex skips spaces
            raise _fail(f"{where}.units[{j}].attributes must be 64 hex characters (a SHA-256 hash)")
        units.append((_id(u.get("id"), f"{where}.units[{j}].id"), _int(u, "capacity", 1, housing.MAX_HOUSEHOLD), attributes_hash))
    if len({u[0] for u in units}) != len(units):
        raise _fail(f"{where}.units repeats a unit id")
    return NodeSpec(
        id=node_id,
        name=name,
        council_keys=keys,
        threshold=_int(council, "threshold", 1, len(keys)),
        members=members,
        caps=full_caps,
        housing_fee=_int(entry, "housing_fee", 0, rules.housing_fee_max) if "housing_fee" in entry else 0,
        area_delta_max=_int(entry, "area_delta_max", 0, rules.area_delta_max) if "area_delta_max" in entry else rules.area_delta_max,
        area_total_max=_int(entry, "area_total_max", 0, rules.area_total_max) if "area_total_max" in entry else rules.area_total_max,
        providers=tuple(providers),
        units=tuple(units),
    )


def _parse_nodes(doc: dict[str, Any], rules: CommunityRules, resources: dict[str, Resource]) -> tuple[NodeSpec, ...]:
    for retired in ("registrar", "members"):
        if retired in doc:
            raise _fail(f"{retired!r} is no longer a genesis field: members belong to nodes[i].members, registered by councils")
    specs = tuple(_parse_node(i, e, rules, resources) for i, e in enumerate(_list(doc, "nodes", "")))
    if len({n.id for n in specs}) != len(specs):
        raise _fail("nodes repeat an id")
    members = [m for n in specs for m in n.members]
    if len(set(members)) != len(members):
        raise _fail("an account is a member of more than one node")
    return specs


class _Records:
    """A read-only state over a dict of records (building the genesis state)."""

    def __init__(self, records: dict[bytes, Any]) -> None:
        self._records = records

    def get(self, key: bytes) -> Any:
        return self._records.get(key)


@dataclass(frozen=True)
class Genesis:
    document: dict[str, Any] | None
    """The parsed JSON, kept only when asked for (`from_file` drops it: at a million accounts it is
    hundreds of MB a node never reads again)."""
    digest: bytes
    """SHA-256 of the canonical encoding of the document: the genesis hash."""
    params: Params
    total_supply: int
    commons_pool: int
    accounts: tuple[tuple[bytes, int], ...]
    validators: tuple[tuple[bytes, str, int], ...]
    rules: CommunityRules
    resources: tuple[tuple[str, Resource], ...]
    nodes: tuple[NodeSpec, ...]

    @property
    def chain_id(self) -> str:
        return self.params.chain_id

    @property
    def members(self) -> tuple[bytes, ...]:
        """Every genesis member, node by node."""
        return tuple(m for n in self.nodes for m in n.members)

    @property
    def hash(self) -> bytes:
        return self.digest

    @classmethod
    def from_json(cls, text: str | bytes, keep_document: bool = True) -> "Genesis":
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits, nesting
            raise _fail(f"not JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
        return cls.from_document(doc, keep_document)

    @classmethod
    def from_file(cls, path: str) -> "Genesis":
        with open(path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise _fail(f"not UTF-8: {exc}") from None
        return cls.from_json(text, keep_document=False)

    @classmethod
    def from_document(cls, doc: Any, keep_document: bool = True) -> "Genesis":
        if not isinstance(doc, dict):
            raise _fail("genesis must be a JSON object")
        try:  # the genesis hash is of the canonical encoding: the whole document must have one
            digest = sha256(encoding.encode(doc))
        except (ValueError, RecursionError) as exc:  # EncodingError, lone surrogates (UnicodeEncodeError)
            raise _fail(f"genesis has no canonical encoding: {type(exc).__name__}: {str(exc)[:200]}") from None
        chain_id = doc.get("chain_id")
        if not isinstance(chain_id, str) or not (1 <= len(chain_id) <= 64) or not chain_id.isprintable():
            raise _fail("chain_id must be 1 to 64 printable characters")
        p = doc.get("params")
        if not isinstance(p, dict):
            raise _fail("params must be an object")
        params = Params(
            chain_id=chain_id,
            genesis_time_ms=_int(doc, "genesis_time_ms", 0, MAX_AMOUNT),
            period_seconds=_int(p, "period_seconds", 1, MAX_AMOUNT // 1000),
            demurrage_rate=_int(p, "demurrage_rate", 0, RATE_SCALE - 1),
            ubi_fraction=_int(p, "ubi_fraction", 0, RATE_SCALE),
            slash_fraction=_int(p, "slash_fraction", 0, RATE_SCALE),
        )
        total_supply = _int(doc, "total_supply", 1, 2**63 - 1)
        commons_pool = _int(doc, "commons_pool")
        accounts: dict[bytes, int] = {}
        for i, entry in enumerate(_list(doc, "accounts", "")):
            if not isinstance(entry, dict):
                raise _fail(f"accounts[{i}] must be an object")
            address = _address(entry.get("address"), f"accounts[{i}].address")
            if address in accounts:
                raise _fail(f"accounts[{i}] repeats an address")
            accounts[address] = _int(entry, "balance")
        resources = _parse_resources(doc)
        rules = _parse_rules(doc, resources)
        node_specs = _parse_nodes(doc, rules, resources)
        validators: dict[bytes, tuple[str, int]] = {}
        for i, entry in enumerate(_list(doc, "validators", "")):
            if not isinstance(entry, dict):
                raise _fail(f"validators[{i}] must be an object")
            address = _address(entry.get("address"), f"validators[{i}].address")
            name = entry.get("name", "")
            if not isinstance(name, str) or len(name) > 64:
                raise _fail(f"validators[{i}].name must be text of at most 64 characters")
            if address in validators:
                raise _fail(f"validators[{i}] repeats an address")
            validators[address] = (name, _int(entry, "stake", 1))
        voting = sum(1 for _, stake in validators.values() if stake >= UNITS_PER_COIN)
        if validators and voting == 0:  # (a ledger without validators at all is for tests and tools)
            raise _fail("no validator has voting power (a stake of at least one coin): no block could ever be made")
        if voting > MAX_GENESIS_VALIDATORS:
            raise _fail(f"{voting} validators with voting power; a validator set holds at most {MAX_GENESIS_VALIDATORS}")
        allocated = sum(accounts.values()) + commons_pool + sum(s for _, s in validators.values())
        if allocated != total_supply:
            raise _fail(f"allocations add up to {allocated}, not the total supply {total_supply}")
        return cls(
            document=doc if keep_document else None,
            digest=digest,
            params=params,
            total_supply=total_supply,
            commons_pool=commons_pool,
            accounts=tuple(accounts.items()),
            validators=tuple((a, n, s) for a, (n, s) in validators.items()),
            rules=rules,
            resources=tuple(resources.items()),
            nodes=node_specs,
        )

    def initial_records(self) -> dict[bytes, Any]:
        """The state at height 0, period 0, as records by key."""
        records: dict[bytes, Any] = {b"g": self.params}
        circulating = 0
        for address, balance in self.accounts:
            records[account_key(address)] = Account(balance, 0, 0)
            circulating += balance
        bonded = 0
        for address, name, stake in self.validators:
            records[validator_key(address)] = Validator(stake, name)
            bonded += stake
        records[b"c"] = ChainHead(0, self.params.genesis_time_ms, 0)
        records[b"t"] = Totals(
            total_supply=self.total_supply,
            circulating=circulating,
            commons_pool=self.commons_pool,
            ubi_reserve=0,
            bonded=bonded,
            demurrage_collected=0,
            ubi_paid=0,
            slashed=0,
            member_count=0,
            usage_fees=0,
        )
        records[b"b"] = self.rules
        for rid, resource in self.resources:
            records[resource_key(rid)] = resource
        return self._community_records(records)

    def _community_records(self, records: dict[bytes, Any]) -> dict[bytes, Any]:
        """Nodes, members, providers and units, made by the same functions transactions use."""
        state = State(_Records(records))
        for n in self.nodes:
            nodes.create_node(state, n.id, n.name, n.council_keys, n.threshold, n.caps, n.housing_fee, n.area_delta_max, n.area_total_max)
            for address in n.members:
                nodes.add_member(state, n.id, address)
            for rid, provider in n.providers:
                quotas.add_provider(state, n.id, rid, provider)
            for unit_id, capacity, attributes in n.units:
                housing.add_unit(state, n.id, unit_id, capacity, attributes)
        for key, record in state.changes.items():
            if record is None:
                records.pop(key, None)
            else:
                records[key] = record
        return records

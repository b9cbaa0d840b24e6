"""Random mixtures of every transaction type, from random signers (council majorities and single
council keys, the wrong council, validators, members, strangers), checked after every block against
the invariants of specs/membership.md, quotas.md and housing.md and the conservation identity.

After every block:
- no right ended or changed holder unless a transaction of its holder in that block (a release, or
  leaving the node, whose succession goes to a co-holder who is a member) did it;
- every quota pool keeps allowances * members <= cap, granted <= that, consumed <= granted; the
  holdings of a period add up to at most what was granted, and each lies within [floor, ceiling];
- no waiting applicant fits a vacant unit of its node; residences, rights and members agree;
- the conservation identity holds, and the stored balances add up to `circulating`.
Allocation is deterministic: a second ledger, fresh from genesis and fed the same blocks, has the
same state root and the same rights after every block.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ledger import BlockInput, LedgerDB, MemoryStore, Rejected
from ledger.housing import MAX_HOUSEHOLD
from ledger.quotas import compute_ceiling, compute_floor
from ledger.records import (
    HousingRight,
    application_key,
    node_key,
    quota_holding_key,
    quota_pool_key,
    residence_key,
    right_event_key,
    right_key,
    unit_key,
)
from ledger.state import STATE_PREFIX, State
from ledger.transition import process_block_header, process_tx
from ledger.tx import encode_body, sign_tx
from tests.ledger.helpers import (
    CHAIN_ID,
    ENERGY,
    HOUSING,
    NODE_COUNCILS,
    PERIOD_MS,
    WATER,
    addr,
    council_address,
    key,
    make_genesis,
    node_doc,
)

PEOPLE = tuple(range(1, 9))
VALIDATOR = 30
PROVIDERS = (50, 51, 52)
NODES = ("north", "south")
UNITS = ("a", "b", "c", "d", "e", "f")
RESOURCES = {"water": WATER, "energy": ENERGY}

person = st.sampled_from(PEOPLE)
node = st.sampled_from(NODES)
resource = st.sampled_from(["water", "energy", "water", "energy", "gold"])
unit_choice = st.sampled_from(["own", "own", "own", *UNITS])
council_signers = st.sampled_from(["majority", "majority", "majority", "all", "one", "other_council", "validator", "person"])
person_signers = st.sampled_from(["self"] * 8 + ["validator", "other"])


def chosen(*kinds: str) -> st.SearchStrategy[Any]:
    """A person, or one picked at run time among those of a kind (see CommunityRules.resolve):
    random signers often fail, so most transactions come from someone who may send them."""
    return st.one_of(person, st.tuples(st.sampled_from(kinds), st.integers(0, 7)), st.tuples(st.sampled_from(kinds), st.integers(0, 7)))


council_ops = st.one_of(
    st.tuples(st.just("member_add"), node, council_signers, chosen("outsider")),
    st.tuples(st.just("member_remove"), st.sampled_from([*NODES, "home", "home"]), council_signers, chosen("member", "holder")),
    st.tuples(
        st.sampled_from(["housing_release", "housing_coholder_remove", "housing_modify"]),
        st.just("home"),
        council_signers,
        chosen("holder"),
    ),
    st.tuples(st.just("unit_add"), node, council_signers, st.sampled_from(UNITS), st.integers(1, 4)),
    st.tuples(st.just("provider_add"), node, council_signers, resource, st.sampled_from(PROVIDERS)),
    st.tuples(st.just("provider_remove"), node, council_signers, resource, st.sampled_from(PROVIDERS)),
    st.tuples(st.just("quota_set_cap"), node, council_signers, resource, st.sampled_from([0, 100, 700, 1_000, 5_000])),
    st.tuples(st.just("node_set_params"), node, council_signers, st.sampled_from([0, 10, 500, 20_000]), st.integers(0, 25)),
)
person_ops = st.one_of(
    st.tuples(st.just("transfer"), person, person_signers, person, st.integers(1, 5_000)),
    st.tuples(st.just("member_leave"), chosen("member", "holder"), person_signers),
    st.tuples(st.just("quota_consume"), st.sampled_from(PROVIDERS + (1,)), person_signers, chosen("member", "newest"), resource, st.integers(1, 300)),
    st.tuples(st.just("quota_trade"), chosen("member", "newest"), person_signers, chosen("peer"), resource, st.integers(1, 200), st.sampled_from([0, 0, 25])),
    st.tuples(st.just("housing_apply"), chosen("member"), person_signers, st.integers(1, 4), st.integers(0, 8)),
    st.tuples(st.just("housing_withdraw"), chosen("applicant"), person_signers),
    st.tuples(st.just("housing_release"), chosen("holder"), person_signers, node, unit_choice),
    st.tuples(st.just("housing_coholder_add"), chosen("holder"), person_signers, node, unit_choice, chosen("outsider", "member")),
    st.tuples(st.just("housing_coholder_remove"), chosen("holder", "coholder"), person_signers, node, unit_choice, chosen("coholder")),
    st.tuples(st.just("housing_modify"), chosen("holder"), person_signers, node, unit_choice, st.sampled_from(["extension", "accessibility", "pool"]), st.integers(-25, 25)),
)
holder_ops = st.one_of(
    st.tuples(st.just("housing_release"), chosen("holder"), person_signers, node, st.just("own")),
    st.tuples(st.just("housing_coholder_add"), chosen("holder"), person_signers, node, st.just("own"), chosen("outsider", "member")),
    st.tuples(st.just("housing_coholder_remove"), chosen("holder", "coholder"), person_signers, node, st.just("own"), chosen("coholder")),
    st.tuples(st.just("housing_modify"), chosen("holder"), person_signers, node, st.just("own"), st.just("extension"), st.integers(-12, 12)),
    st.tuples(st.just("member_leave"), chosen("holder"), person_signers),
)
quota_ops = st.one_of(
    st.tuples(st.just("member_add"), node, st.just("majority"), chosen("outsider")),
    st.tuples(st.just("quota_consume"), st.sampled_from(PROVIDERS[:2]), st.just("self"), chosen("newest", "member"), resource, st.integers(1, 300)),
    st.tuples(st.just("quota_trade"), chosen("newest", "member"), st.just("self"), chosen("peer", "newest"), resource, st.integers(1, 200), st.sampled_from([0, 25])),
)
ops = st.lists(st.one_of(council_ops, person_ops, holder_ops, quota_ops), min_size=1, max_size=6)
advance = st.sampled_from([1, 1, PERIOD_MS, PERIOD_MS, 3 * PERIOD_MS])



class CommunityRules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        providers = (("water", 50), ("energy", 51))
        self.genesis = make_genesis(
            {i: 1_000_000 for i in PEOPLE},
            validators={VALIDATOR: 1_000_000},
            resources=[WATER, ENERGY],
            housing=HOUSING,
            nodes=[
                node_doc("north", members=(1, 2, 3, 4), caps={"water": 1_000, "energy": 600}, providers=providers,
                         units=(("a", 2), ("b", 3), ("c", 1)), housing_fee=50),
                node_doc("south", members=(5, 6), caps={"water": 700}, providers=providers, units=(("a", 4), ("d", 2))),
            ],
        )
        self.db = LedgerDB(MemoryStore(), self.genesis)
        self.replica = LedgerDB(MemoryStore(), self.genesis)  # a second ledger fed the same blocks
        self.building: State = self.db.view()  # the block being built, after its accepted transactions

    # building transactions (against the block being built, so they see each other's effects) ----------
    def sign(self, tx_type: str, sender: bytes, signers: list[int], **fields: Any) -> bytes:
        account = self.building.get_account(sender)
        nonce = 0 if account is None else account.nonce
        body = encode_body(tx_type, CHAIN_ID, sender, nonce, **fields)
        return sign_tx(CHAIN_ID, body, [key(i) for i in signers])

    def council_tx(self, op: tuple[Any, ...]) -> bytes:
        """A council action; "home" is the node of the person it concerns. The council also tries
        the housing transactions only a holder may send: they must all fail."""
        tx_type, node_id, mode, *args = op
        if node_id == "home":
            args[0] = self.resolve(args[0])
            member = self.building.get_member(addr(args[0]))
            node_id = "north" if member is None else member.node
        council = NODE_COUNCILS[node_id]
        other = NODE_COUNCILS["south" if node_id == "north" else "north"]
        signers = {
            "majority": list(council[:2]),
            "all": list(council),
            "one": [council[2]],
            "other_council": list(other[:2]),
            "validator": [VALIDATOR],
            "person": list(council[:2]),
        }[mode]
        sender = addr(1) if mode == "person" else council_address(node_id)
        fields: dict[str, Any] = {"node": node_id}
        if tx_type in ("member_add", "member_remove"):
            fields["member"] = addr(self.resolve(args[0]))
        elif tx_type.startswith("housing_"):
            fields.update(self.where(addr(args[0]), node_id, "own"))
            fields.update({"housing_release": {}, "housing_coholder_remove": {"coholder": addr(args[0])}}.get(tx_type, {"kind": "extension", "area_delta": 1}))
        elif tx_type == "unit_add":
            fields.update(unit=args[0], capacity=args[1], attributes=bytes(32))
        elif tx_type in ("provider_add", "provider_remove"):
            fields.update(resource=args[0], provider=addr(args[1]))
        elif tx_type == "quota_set_cap":
            fields.update(resource=args[0], cap=args[1])
        else:
            fields.update(housing_fee=args[0], area_delta_max=min(args[1], 20))
        return self.sign(tx_type, sender, signers, **fields)

    def resolve(self, spec: Any, peer: int | None = None) -> int:
        """A person index: `spec` itself, or the k-th (cyclically) of those of a kind now."""
        if isinstance(spec, int):
            return spec
        kind, k = spec
        view = self.building

        def residence(i: int) -> Any:
            return view.get(residence_key(addr(i)))

        def member_node(i: int) -> str | None:
            member = view.get_member(addr(i))
            return None if member is None else member.node

        pool = {
            "member": [i for i in PEOPLE if member_node(i) is not None],
            "outsider": [i for i in PEOPLE if member_node(i) is None],
            "holder": [i for i in PEOPLE if residence(i) is not None and residence(i).holder],
            "coholder": [i for i in PEOPLE if residence(i) is not None and not residence(i).holder],
            "applicant": [i for i in PEOPLE if view.get(application_key(addr(i))) is not None],
            "peer": [i for i in PEOPLE if i != peer and peer is not None and member_node(i) == member_node(peer)],
            "newest": sorted((i for i in PEOPLE if member_node(i) is not None), key=lambda i: -view.get_member(addr(i)).joined_period)[:1]
            if peer is None
            else [i for i in PEOPLE if i != peer and member_node(i) == member_node(peer)][-1:],
        }[kind]
        return pool[k % len(pool)] if pool else PEOPLE[k % len(PEOPLE)]

    def where(self, sender: bytes, node_id: str, unit_id: str) -> dict[str, str]:
        if unit_id == "own":
            residence = self.building.get(residence_key(sender))
            return {"node": node_id, "unit": "a"} if residence is None else {"node": residence.node, "unit": residence.unit}
        return {"node": node_id, "unit": unit_id}

    def person_tx(self, op: tuple[Any, ...]) -> bytes:
        tx_type, who, mode, *args = op
        who = self.resolve(who)
        args = [self.resolve(a, peer=who) if isinstance(a, tuple) else a for a in args]
        sender = addr(who)
        signers = {"self": [who], "validator": [VALIDATOR], "other": [who % len(PEOPLE) + 1]}[mode]
        if tx_type == "transfer":
            return self.sign(tx_type, sender, signers, to=addr(args[0]), amount=args[1])
        if tx_type in ("member_leave", "housing_withdraw"):
            return self.sign(tx_type, sender, signers)
        if tx_type == "quota_consume":
            return self.sign(tx_type, sender, signers, member=addr(args[0]), resource=args[1], amount=args[2])
        if tx_type == "quota_trade":
            buyer, res, amount, price = args
            extra = {"price": price} if price else {}
            cosign = [buyer] if price and buyer != who else []
            return self.sign(tx_type, sender, signers + cosign, to=addr(buyer), resource=res, amount=amount, **extra)
        if tx_type == "housing_apply":
            return self.sign(tx_type, sender, signers, household=args[0], needs=args[1])
        place = self.where(sender, args[0], args[1])
        if tx_type == "housing_release":
            return self.sign(tx_type, sender, signers, **place)
        if tx_type == "housing_coholder_add":
            cosign = [args[2]] if args[2] != who else []
            return self.sign(tx_type, sender, signers + cosign, coholder=addr(args[2]), **place)
        if tx_type == "housing_coholder_remove":
            return self.sign(tx_type, sender, signers, coholder=addr(args[2]), **place)
        return self.sign(tx_type, sender, signers, kind=args[2], area_delta=args[3], **place)

    # the one rule: a block of random transactions -----------------------------------------------------
    @rule(block_ops=ops, advance_ms=advance)
    def block(self, block_ops: list[tuple[Any, ...]], advance_ms: int) -> None:
        """Build each transaction against the block so far, keep those that apply (as a proposer
        does), then execute and commit the block as every validator would."""
        head = self.db.head
        block = BlockInput(head.height + 1, head.time_ms + advance_ms)
        self.building = self.db.view()
        process_block_header(self.building, block)
        accepted = []
        for op in block_ops:
            raw = self.council_tx(op) if op[1] in (*NODES, "home") else self.person_tx(op)
            overlay = self.building.child()
            try:
                process_tx(overlay, raw)
            except Rejected:
                continue
            overlay.merge_into_parent()
            accepted.append(raw)
        rights_before = self.rights()
        block = replace(block, txs=tuple(accepted))
        executed = self.db.execute(block)
        self.db.commit(executed)
        self.check_rights_changed_only_by_their_holders(rights_before, [(tx.sender, tx.type) for tx in executed.txs])
        self.replica.commit(self.replica.execute(block))
        assert self.replica.state_root == self.db.state_root, "the same history gave another state"
        assert self.rights(self.replica) == self.rights(), "the same history allocated differently"

    # reading the state ----------------------------------------------------------------------------------
    def rights(self, db: LedgerDB | None = None) -> dict[tuple[str, str], HousingRight]:
        view = (db or self.db).view()
        out = {}
        for node_id in NODES:
            for unit_id in UNITS:
                right = view.get(right_key(node_id, unit_id))
                if right is not None:
                    out[(node_id, unit_id)] = right
        return out

    def check_rights_changed_only_by_their_holders(self, before: dict[tuple[str, str], HousingRight], accepted: list[tuple[bytes, str]]) -> None:
        after = self.rights()
        view = self.db.view()
        for place, old in before.items():
            new = after.get(place)
            if new is not None and (new.holder, new.grant, new.granted_height) == (old.holder, old.grant, old.granted_height):
                continue
            acts = {t for s, t in accepted if s == old.holder}
            assert acts & {"housing_release", "member_leave"}, f"right {place} of {old.holder.hex()[:8]} changed without its holder: {accepted}"
            if new is not None and new.grant == old.grant:  # same right, new holder: succession
                assert "member_leave" in acts and new.granted_height == old.granted_height
                events = [view.get(right_event_key(*place, new.grant, i)) for i in range(old.history_length, new.history_length)]
                added = {e.address for e in events if e.event == "coholder_added"}
                assert new.holder in set(old.co_holders) | added, "succession to someone who was no co-holder"
                assert ("succession", new.holder) in [(e.event, e.address) for e in events]
                member = view.get_member(new.holder)
                assert member is not None and member.node == place[0]

    @invariant()
    def conservation_holds(self) -> None:
        t = self.db.totals()
        assert t.circulating + t.commons_pool + t.ubi_reserve + t.bonded == t.total_supply
        balances = [self.db.committed.get(k[len(STATE_PREFIX):]).balance for k, _ in self.db.store.iterate(STATE_PREFIX + b"a")]
        assert sum(balances) == t.circulating and min(balances) >= 0

    @invariant()
    def quota_invariants_hold(self) -> None:
        view = self.db.view()
        for node_id in NODES:
            for res_id, res in RESOURCES.items():
                pool = view.get(quota_pool_key(node_id, res_id))
                assert pool.allowance * pool.members <= pool.cap
                assert pool.consumed <= pool.granted <= pool.allowance * pool.members
                held = 0
                for i in PEOPLE:
                    member = view.get_member(addr(i))
                    holding = view.get(quota_holding_key(addr(i), res_id))
                    if holding is None or holding.period != pool.period or member is None or member.node != node_id:
                        continue
                    held += holding.holding
                    assert holding.allowance == (pool.allowance if member.joined_period < pool.period else 0)
                    assert holding.consumed <= holding.holding
                    assert compute_floor(holding.allowance, res["floor_percent"]) <= holding.holding
                    assert holding.holding <= compute_ceiling(pool.allowance, res["ceiling_percent"])
                assert held <= pool.granted

    @invariant()
    def housing_is_consistent_and_no_waiting_applicant_fits_a_vacant_unit(self) -> None:
        view = self.db.view()
        for node_id in NODES:
            vacant = [view.get(unit_key(node_id, u)) for u in UNITS]
            capacities = [u.capacity for u in vacant if u is not None and u.vacant]
            for u in UNITS:
                unit, right = view.get(unit_key(node_id, u)), view.get(right_key(node_id, u))
                assert (unit is not None and not unit.vacant) == (right is not None)
                if right is not None:
                    member = view.get_member(right.holder)
                    assert member is not None and member.node == node_id, "a holder is a member of the unit's node"
                    assert view.get(residence_key(right.holder)).holder
                    assert len(right.co_holders) + 1 <= unit.capacity <= MAX_HOUSEHOLD
                    for c in right.co_holders:
                        assert view.get(residence_key(c)).unit == u
            members = 0
            for i in PEOPLE:
                member = view.get_member(addr(i))
                members += member is not None and member.node == node_id
                application = view.get(application_key(addr(i)))
                if application is not None and application.node == node_id:
                    assert member is not None and member.node == node_id
                    assert view.get(residence_key(addr(i))) is None
                    assert all(c < application.household for c in capacities), "a waiting applicant fits a vacant unit"
            assert view.get(node_key(node_id)).member_count == members

CommunityRules.TestCase.settings = settings(
    max_examples=50, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestCommunityRules = CommunityRules.TestCase

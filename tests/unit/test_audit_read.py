"""Reading the audit trail over the API: pages, filters, the verdict, the time bound."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from quitclaim.domain.errors import Forbidden, ValidationFailed
from quitclaim.domain.registry import Principal, Role
from quitclaim.usecases.audit_read import CLI_HINT, EVENT_FIELDS, AuditReader
from quitclaim.usecases.audit_trail import AuditTrail
from tests.unit.fakes import FakeAuditChain, FixedClock

TENANT = "acme"
START = datetime(2026, 11, 26, 12, tzinfo=UTC)


def who(role: Role = Role.AUDITOR, tenant: str = TENANT) -> Principal:
    return Principal(tenant, "key-1", role)


def chain(blocks: int = 5) -> FakeAuditChain:
    """``blocks`` records an hour apart, two events each (created, then updated)."""
    store = FakeAuditChain()
    clock = FixedClock(START)
    trail = AuditTrail(store=store, clock=clock, sleep=lambda _: None, lanes=0)
    for i in range(blocks):
        clock.at = START + timedelta(hours=i)
        events = [
            {"action": "subject.created", "tenant": TENANT, "subject_id": f"s{i}", "actor": "k1"},
            {"action": "subject.updated", "tenant": TENANT, "subject_id": f"s{i}", "actor": "k2"},
        ]
        trail.append(TENANT, f"api/r{i}", events)
    trail.append("other", "api/x", [{"action": "subject.created", "tenant": "other"}])
    return store


def reader(store: FakeAuditChain, budget_s: float = 20.0) -> AuditReader:
    return AuditReader(AuditTrail(store=store, clock=FixedClock()), budget_s=budget_s)


def test_pages_walk_the_whole_chain_in_order_without_gaps_or_repeats() -> None:
    # Given a chain of 10 events
    read = reader(chain())
    # When it is read 3 at a time, following the cursor
    seen, cursor = [], None
    for _ in range(10):
        page = read.events(who(), limit=3, cursor=cursor)
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    # Then every event comes once, in chain order, and the last page says so
    assert [(e["seq"], e["action"]) for e in seen] == [
        (seq, action) for seq in range(1, 6) for action in ("subject.created", "subject.updated")
    ]
    assert cursor is None
    assert {e["tenant"] for e in seen} == {TENANT}
    assert {k for e in seen for k in e} <= EVENT_FIELDS | {"seq", "lane", "at"}


def test_filters_by_action_and_time_page_over_what_matches() -> None:
    read = reader(chain())
    # When only updates from the second to the fourth hour are asked, one at a time
    since, until = START + timedelta(hours=1), START + timedelta(hours=4)
    first = read.events(who(), limit=2, since=since, until=until, action="subject.updated")
    rest = read.events(
        who(), limit=2, since=since, until=until, action="subject.updated", cursor=first.next_cursor
    )
    # Then exactly those three come, over two pages
    items = [*first.items, *rest.items]
    assert [e["subject_id"] for e in items] == ["s1", "s2", "s3"]
    assert {e["action"] for e in items} == {"subject.updated"}
    assert first.next_cursor is not None and rest.next_cursor is None


def test_an_event_holds_only_allowed_fields_and_its_actor() -> None:
    # Given a record holding a field the chain's allow-list does not know
    store = FakeAuditChain()
    trail = AuditTrail(store=store, clock=FixedClock(), sleep=lambda _: None, lanes=0)
    odd = {"action": "x.y", "tenant": TENANT, "actor": "user:abc", "display_name": "Ada"}
    trail.append(TENANT, "api/odd", [odd])
    # When it is read
    [event] = reader(store).events(who()).items
    # Then the actor is answered and the unknown field is not
    assert event["actor"] == "user:abc" and "display_name" not in event
    assert "Ada" not in json.dumps(event)


def test_a_cursor_of_another_tenant_or_garbled_is_refused() -> None:
    store = chain()
    theirs = reader(store).events(who(tenant="other2"), limit=1)
    assert theirs.items == ()  # no chain: nothing, no cursor
    mine = reader(store).events(who(), limit=1).next_cursor
    assert mine is not None
    # When another tenant's principal presents acme's cursor, or a garbled one
    for cursor in (mine, "not-base64!!", "e30="):
        with pytest.raises(ValidationFailed) as refused:
            reader(store).events(who(tenant="other"), cursor=cursor)
        # Then it is refused, naming the field
        assert refused.value.field == "cursor"


def test_roles_without_the_audit_capability_are_refused() -> None:
    with pytest.raises(Forbidden):
        reader(chain()).events(who(Role.REVIEWER))
    with pytest.raises(Forbidden):
        reader(chain()).verify(who(Role.REVIEWER))


def test_verify_answers_intact_or_the_problem_by_code() -> None:
    # Given an intact chain
    store = chain()
    verdict = reader(store).verify(who())
    assert (verdict.intact, verdict.complete, verdict.records, verdict.problems) == (
        True,
        True,
        5,
        {},
    )
    # When one record's bytes are changed
    key = sorted(k for k in store.objects if k.startswith(f"audit/{TENANT}/"))[2]
    record = json.loads(store.objects[key])
    record["events"][0]["subject_id"] = "forged"
    store.objects[key] = json.dumps(record).encode()
    verdict = reader(store).verify(who())
    # Then the verdict names the break and its code
    assert verdict.intact is False and verdict.problems == {"hash_mismatch": 1}
    assert verdict.first_break is not None and verdict.first_break["seq"] == 3


def test_a_chain_too_large_for_the_time_budget_says_so_and_points_at_the_cli() -> None:
    # Given a reader whose clock runs past its budget while reading
    ticks = itertools.count(step=10.0)
    read = AuditReader(
        AuditTrail(store=chain(), clock=FixedClock()),
        budget_s=15.0,
        monotonic=lambda: next(ticks),
    )
    # When it verifies and lists
    verdict = read.verify(who())
    page = read.events(who())
    # Then neither pretends: not decided, nothing listed, the CLI named
    assert (verdict.intact, verdict.complete, verdict.hint) == (None, False, CLI_HINT)
    assert (page.items, page.complete, page.hint) == ((), False, CLI_HINT)


def test_a_chain_longer_than_the_limit_by_its_heads_is_not_even_listed() -> None:
    # Given a chain of 5 records and a reader that lists at most 4
    store = chain()
    read = AuditReader(AuditTrail(store=store, clock=FixedClock()), max_records=4)
    listed: list[str] = []
    records = store.records
    store.records = lambda tenant: (listed.append(tenant), records(tenant))[1]  # type: ignore[method-assign]
    # When it verifies
    verdict = read.verify(who())
    # Then it answers "not decided" without listing the bucket
    assert (verdict.intact, verdict.complete, listed) == (None, False, [])

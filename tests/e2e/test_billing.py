"""Billing on the local stack (issue #26): a month of uploads metered hourly, exactly once.

Two tenants upload a few images on five days of December 2026, the hourly
metering function firing through the stack's scheduler. One has a Marketplace
customer (BatchMeterUsage on the emulator), the other is billed through the
signed usage.hourly event only. Crashes are injected between claiming,
sending and marking an hour, and a throttled batch; the scheduler's retry (and
the next run) must leave Marketplace holding exactly the metered quantities,
and ``quitclaim usage reconcile`` clean, until a counter is changed by hand.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import main
from devstack import marketplace
from devstack.stack import LOCAL_MARKETPLACE_PRODUCT
from quitclaim.adapters.billing_store import AwsMarketplace, DynamoLedgers
from quitclaim.adapters.dynamo import DynamoApiKeys, DynamoUsage
from quitclaim.bootstrap import (
    api_keys_service,
    onboarding_service,
    usage_service,
    webhook_admin,
)
from quitclaim.domain.registry import Role
from quitclaim.usecases.keys import ApiKeys
from tests.conftest import DEMO_NOW
from tests.e2e.test_webhooks_out import Receiver

pytestmark = pytest.mark.e2e

MKT, HOOK = "bill-mkt", "bill-hook"
CUSTOMER = "cust-bill-mkt"
MONTH = "2026-12"
DAYS = (2, 9, 16, 23, 30)  # upload days; each run is followed by one injected fault


def tiny_jpeg(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (shade, 80, 120)).save(out, "JPEG")
    return out.getvalue()


def once(action: Callable[[], None]) -> Callable[..., Any]:
    """A fault that happens on the first call only (the scheduler's retry then succeeds)."""
    state = {"done": False}

    def fault() -> None:
        if not state["done"]:
            state["done"] = True
            action()

    return fault


def crash() -> None:
    raise RuntimeError("injected crash")


def billing_schedules(stack: Any, state: str) -> None:
    """Turn the metering and reconciliation schedules on or off (deployed DISABLED locally)."""
    scheduler = stack.client("scheduler")
    for logical_id in ("MeteringSchedule", "ReconcileSchedule"):
        found = scheduler.get_schedule(Name=stack.resources[logical_id])
        keep = ("GroupName", "ScheduleExpression", "FlexibleTimeWindow", "Target")
        extra = {k: found[k] for k in ("ScheduleExpressionTimezone",) if k in found}
        scheduler.update_schedule(
            Name=found["Name"], State=state, **{k: found[k] for k in keep}, **extra
        )


def _arm_fault_of_day(n: int, faults: dict[int, Callable[..., Any]]) -> None:
    """Day n's failure of the hourly run, each in a different place."""
    faults.clear()
    if n == 0:  # claimed, then the crash before anything is sent
        faults[0] = once(crash)
        faults[0].before = True  # type: ignore[attr-defined]
    elif n == 1:  # sent and accepted, then the crash before the mark
        faults[0] = once(crash)
    elif n == 2:  # the mark itself fails (after the event went out)
        faults[1] = once(crash)
    elif n == 3:  # Marketplace throttles beyond the client's retries
        marketplace.throttle_next(5)


@pytest.fixture(scope="module")
def month_of_uploads(local_stack: Any) -> Iterator[dict[str, Any]]:
    # Given two tenants on the stack, one a subscribed Marketplace customer
    runner = CliRunner()
    for tenant, plan in ((MKT, "standard"), (HOOK, "free")):
        onboarding_service().create_tenant(
            tenant, name=tenant, plan=plan, contact_email=f"ops@{tenant}.example"
        )
    done = runner.invoke(
        main, ["usage", "customer", "--tenant", MKT, "--marketplace-customer-id", CUSTOMER]
    )
    assert done.exit_code == 0, done.output
    marketplace.subscribe(LOCAL_MARKETPLACE_PRODUCT, CUSTOMER, local_stack.region)
    # and the other with a receiver for its usage.hourly events
    receiver = Receiver()
    url = receiver.start()
    admin = ApiKeys(DynamoApiKeys()).issue(HOOK, Role.ADMIN, "billing")
    webhook_admin().register_endpoint(
        api_keys_service().resolve(admin.secret).tenant, url, ["usage.hourly"], "billing"
    )
    billing_schedules(local_stack, "ENABLED")
    s3, bucket = local_stack.client("s3"), local_stack.outputs["UploadsBucketName"]
    original_send, original_mark = AwsMarketplace.batch_meter, DynamoLedgers.mark
    faults: dict[int, Callable[..., Any]] = {}

    def send(self: AwsMarketplace, requests: Any) -> Any:
        fault = faults.get(0)
        if fault is not None and getattr(fault, "before", False):
            fault()
        answers = original_send(self, requests)
        if fault is not None and not getattr(fault, "before", False):
            fault()  # sent, accepted, and the function dies before it marks
        return answers

    def mark(self: DynamoLedgers, tenant: str, month: str, record: Any) -> None:
        fault = faults.get(1)
        if fault is not None:
            fault()
        original_mark(self, tenant, month, record)

    AwsMarketplace.batch_meter = send  # type: ignore[method-assign]
    DynamoLedgers.mark = mark  # type: ignore[method-assign]
    firings: list[Any] = []
    try:
        for n, day in enumerate(DAYS):
            # When each uploads on a few days (jumping between them: no run in between)
            local_stack.clock.set(datetime(2026, 12, day, 10, 0, tzinfo=UTC))
            for tenant in (MKT, HOOK):
                for k in range(1 + n % 2):
                    key = f"incoming/{tenant}/d{day}-{k}.jpg"
                    s3.put_object(Bucket=bucket, Key=key, Body=tiny_jpeg(day * 7 + k))
                usage_service().count_api_call(tenant)
            local_stack.drain()
            # and the hourly run fails once in a different place each day
            _arm_fault_of_day(n, faults)
            report = local_stack.tick(datetime(2026, 12, day, 12, 30, tzinfo=UTC))
            firings += [f for f in report.firings if f.function == "MeteringFunction"]
        # And the month ends: the first run of January closes December
        faults.clear()
        local_stack.clock.set(datetime(2027, 1, 1, 0, 10, tzinfo=UTC))
        report = local_stack.tick(datetime(2027, 1, 1, 1, 20, tzinfo=UTC))
        firings += [f for f in report.firings if f.function == "MeteringFunction"]
        yield {"receiver": receiver, "firings": firings}
    finally:
        billing_schedules(local_stack, "DISABLED")
        AwsMarketplace.batch_meter = original_send  # type: ignore[method-assign]
        DynamoLedgers.mark = original_mark  # type: ignore[method-assign]
        receiver.stop()
        local_stack.clock.set(DEMO_NOW)


def test_marketplace_holds_exactly_the_metered_quantities_once_each(
    local_stack: Any, month_of_uploads: dict[str, Any]
) -> None:
    # Then every injected crash was retried (a second attempt), and the runs went through
    firings = month_of_uploads["firings"]
    assert [f.error for f in firings] == [None] * len(firings)
    assert max(f.attempts for f in firings) == 2
    # And Marketplace holds one record per dimension and hour with usage, for the customer only
    held = [
        r
        for r in marketplace.metered_records(LOCAL_MARKETPLACE_PRODUCT, local_stack.region)
        if r["customer"] in (CUSTOMER, HOOK)
    ]
    assert held and {r["customer"] for r in held} == {CUSTOMER}
    per_hour = Counter((r["dimension"], r["timestamp"]) for r in held)
    assert set(per_hour.values()) == {1}
    # And its totals are the month's counters, exactly
    counters = DynamoUsage().counters(MKT, MONTH)
    totals = Counter[str]()
    for r in held:
        totals[r["dimension"]] += r["quantity"]
    assert {d: n for d, n in counters.items() if n} == dict(totals)
    assert counters["images_scanned"] == sum(1 + n % 2 for n in range(len(DAYS)))


def test_the_tenant_without_a_customer_is_billed_by_signed_usage_hourly_events(
    month_of_uploads: dict[str, Any],
) -> None:
    bodies = [
        (headers, json.loads(body)) for headers, body, _ in month_of_uploads["receiver"].accepted
    ]
    hourly = [(h, b) for h, b in bodies if b["type"] == "usage.hourly"]
    assert hourly and all(h["webhook-signature"].startswith("v1,") for h, _ in hourly)
    # At least once, as Standard Webhooks delivers: a re-publish after the crash in the
    # mark may arrive twice, with the same webhook-id and event id (the importer dedupes)
    by_webhook_id = {h["webhook-id"]: b for h, b in hourly}
    events = list(by_webhook_id.values())
    assert len({e["id"] for e in events}) == len(events) == len(DAYS)
    assert {e["data"]["billed_via"] for e in events} == {"webhook"}
    totals = Counter[str]()
    for e in events:
        totals.update(e["data"]["quantities"])
    counters = DynamoUsage().counters(HOOK, MONTH)
    assert {d: n for d, n in counters.items() if n} == {d: n for d, n in totals.items() if n}


def test_reconcile_is_clean_then_reports_a_counter_changed_by_hand(
    month_of_uploads: dict[str, Any],
) -> None:
    runner = CliRunner()
    args = ["usage", "reconcile", "--month", MONTH, "--tenant", MKT, "--tenant", HOOK]
    clean = runner.invoke(main, args)
    assert clean.exit_code == 0, clean.output
    assert "2 tenants reconciled, clean" in clean.output
    # When one counter is changed by hand
    DynamoUsage().add(HOOK, MONTH, {"images_scanned": 2})
    try:
        found = runner.invoke(main, [*args, "--json"])
        # Then the tenant, the dimension and the difference are reported, and it exits 1
        assert found.exit_code == 1, found.output
        [line] = json.loads(found.stdout)["differences"]
        assert (line["tenant"], line["dimension"]) == (HOOK, "images_scanned")
        assert "metered-recomputed=+2" in line["problems"]
        assert "metered-sent=+2" in line["problems"]
    finally:
        DynamoUsage().add(HOOK, MONTH, {"images_scanned": -2})


def test_get_usage_shows_the_month_against_quota_and_prices_projected(
    local_stack: Any, month_of_uploads: dict[str, Any]
) -> None:
    from chalice.test import Client

    from devstack.api_server import api_dir, load_app

    # Given the middle of December (half the month gone) and a reviewer's key (its
    # request counts one API call in December: this test runs after the reconciliation)
    key = ApiKeys(DynamoApiKeys()).issue(MKT, Role.REVIEWER, "bill").secret
    local_stack.clock.set(datetime(2026, 12, 16, 12, tzinfo=UTC))
    try:
        with Client(load_app(), stage_name="prod", project_dir=str(api_dir())) as client:
            reply = client.http.get(
                f"/usage?month={MONTH}", headers={"Authorization": f"Bearer {key}"}
            )
    finally:
        local_stack.clock.set(DEMO_NOW)
    # When it asks for its usage, Then the bill shows each unit against quota and prices
    assert reply.status_code == 200, reply.body
    got = json.loads(reply.body)["bill"]
    assert (got["plan"], got["currency"], got["month_elapsed"]) == ("standard", "EUR", 0.5)
    images = next(d for d in got["dimensions"] if d["dimension"] == "images_scanned")
    used = DynamoUsage().counters(MKT, MONTH)["images_scanned"]
    assert (images["used"], images["quota"], images["projected"]) == (used, 20_000, used * 2)
    assert images["unit_price"] > 0 and got["projected_amount"] > got["amount"] > 0

"""Ids are validated over their whole text: a trailing newline is not an id.

Python's ``$`` also matches before a final ``\\n``, so ``re.match(r"^x$")``
admits ``"x\\n"``: a tenant ``"acme\\n"`` would pass the check and then name
other keys, prefixes and log lines than ``"acme"``.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from quitclaim.api import schemas
from quitclaim.api.schemas import is_id
from quitclaim.domain.audit_chain import canonical, record_key, seal, verify
from quitclaim.domain.dialects import SignatureRejected
from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.models import is_tenant_id
from quitclaim.domain.webhooks import lookup
from quitclaim.usecases.webhook_admin import WebhookAdmin
from quitclaim.usecases.webhook_inbox import WebhookInbox

TRAILING = ["\n", "\r\n", "\n\n"]


@pytest.mark.parametrize("tail", TRAILING)
def test_a_tenant_id_with_a_trailing_newline_is_refused(tail: str) -> None:
    assert is_tenant_id("acme")
    assert not is_tenant_id("acme" + tail)


@pytest.mark.parametrize("tail", TRAILING)
def test_a_record_id_with_a_trailing_newline_is_refused(tail: str) -> None:
    assert is_id("sub_0123abc")
    assert not is_id("sub_0123abc" + tail)


@pytest.mark.parametrize("tail", TRAILING)
def test_a_webhook_source_name_with_a_trailing_newline_is_refused(tail: str) -> None:
    # Given no store at all: the name must be refused before anything is read
    admin = WebhookAdmin(store=None, secrets=None, sender=None, clock=None)  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed) as err:
        admin.register_source("acme", "crm" + tail, preset="generic-form")
    assert err.value.field == "name"


@pytest.mark.parametrize("tail", TRAILING)
def test_the_inbound_route_refuses_a_tenant_or_source_with_a_newline(tail: str) -> None:
    inbox = WebhookInbox(None, None, None, None, None, None)  # type: ignore[arg-type]
    for tenant, name in (("acme", "crm" + tail), ("acme" + tail, "crm")):
        with pytest.raises(SignatureRejected):
            inbox.receive(tenant, name, {}, b"{}")


def test_a_mapping_path_with_a_trailing_newline_finds_nothing() -> None:
    assert lookup({"a": {"b": 1}}, "a.b") == 1
    assert lookup({"a": {"b": 1}}, "a.b\n") is None


def test_an_audit_key_with_a_trailing_newline_is_not_a_record_key() -> None:
    record = seal("acme", 1, "0" * 64, "sqs/m", "2026-11-26T12:00:00+00:00", [])
    result = verify("acme", [(record_key("acme", 1) + "\n", canonical(record))])
    assert result.first_break is not None
    assert result.first_break.problem == "unexpected_key"


@pytest.mark.parametrize(
    ("model", "field", "good"),
    [
        (schemas.AssetQuery, "subject", "sub_0123abc"),
        (schemas.CreateWebhookSource, "name", "crm"),
    ],
)
def test_request_schemas_refuse_an_id_with_a_trailing_newline(
    model: Any, field: str, good: str
) -> None:
    base: dict[str, Any] = {"preset": "generic-form"} if field == "name" else {}
    assert getattr(model.model_validate({**base, field: good}), field) == good
    with pytest.raises(ValidationError):
        model.model_validate({**base, field: good + "\n"})

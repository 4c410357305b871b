"""FormStore on the tenants table: form versions, form settings, coming-of-age days.

Keys (a tenant id never holds ``#``, so none of these is mistaken for a tenant):

- ``{tenant}#form#{version}``: one form version, written once (condition: absent);
- ``{tenant}#form``: the tenant's form settings (age of consent, versions);
- ``majority#{YYYY-MM-DD}``: the guardians' consents whose person comes of age
  that day, every tenant's (entries ``tenant/subject/consent``; the daily
  reminder run reads one item per day, as the expiry index is read per day).
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from quitclaim.adapters.dynamo.plumbing import conditional_failed, dependency, tenant_key
from quitclaim.adapters.dynamo.tables import FormItem, TenantModel
from quitclaim.domain.errors import Conflict
from quitclaim.domain.forms import (
    DEFAULT_AGE_OF_CONSENT,
    FormSettings,
    FormText,
    FormVersion,
    MajorityDue,
)


def _bind() -> None:
    """Follow the tenants table ``bind_models`` chose for this container."""
    source: Any = TenantModel.Meta
    meta: Any = FormItem.Meta
    bound = (source.table_name, source.region, getattr(source, "host", None))
    if (meta.table_name, meta.region, getattr(meta, "host", None)) != bound:
        meta.table_name, meta.region, meta.host = bound
        FormItem._connection = None


def _get(key: str) -> FormItem | None:
    _bind()
    with dependency("form read"):
        try:
            return FormItem.get(key, consistent_read=True)
        except FormItem.DoesNotExist:
            return None


class DynamoFormStore:
    def settings(self, tenant: str) -> FormSettings:
        item = _get(tenant_key(tenant, "form"))
        if item is None:
            return FormSettings(tenant)
        return FormSettings(
            tenant,
            int(item.age_of_consent or DEFAULT_AGE_OF_CONSENT),
            item.current,
            tuple(sorted(item.versions or ())),
        )

    def set_age_of_consent(self, tenant: str, age: int) -> FormSettings:
        _bind()
        with dependency("form settings write"):
            FormItem(tenant_key(tenant, "form")).update(
                actions=[FormItem.owner.set(tenant), FormItem.age_of_consent.set(age)]
            )
        return self.settings(tenant)

    def add_version(self, form: FormVersion) -> None:
        _bind()
        item = FormItem(
            tenant_key(form.tenant, "form", form.version),
            owner=form.tenant,
            version=form.version,
            texts={k: {"title": v.title, "body": v.body} for k, v in form.texts.items()},
            purposes=set(form.purposes),
            period_days=form.period_days,
            created_at=form.created_at,
        )
        with dependency("form version write"):
            try:
                item.save(condition=FormItem.tenant.does_not_exist())
            except PutError as exc:
                if conditional_failed(exc):
                    raise Conflict(
                        f"form version {form.version} exists and is never changed; "
                        "publish a new version",
                        code="version_exists",
                    ) from None
                raise
            FormItem(tenant_key(form.tenant, "form")).update(
                actions=[
                    FormItem.owner.set(form.tenant),
                    FormItem.current.set(form.version),
                    FormItem.versions.add({form.version}),
                ]
            )

    def version(self, tenant: str, version: str) -> FormVersion | None:
        item = _get(tenant_key(tenant, "form", version))
        if item is None or item.owner != tenant:
            return None
        return FormVersion(
            tenant=tenant,
            version=item.version or version,
            texts={k: FormText(v["title"], v["body"]) for k, v in (item.texts or {}).items()},
            purposes=tuple(sorted(item.purposes or ())),
            period_days=None if item.period_days is None else int(item.period_days),
            created_at=item.created_at,
        )

    def add_majority(self, due: MajorityDue) -> None:
        _bind()
        with dependency("majority write"):
            FormItem(f"majority#{due.day}").update(actions=[FormItem.due.add({_entry(due)})])

    def majority_on(self, day: str) -> list[MajorityDue]:
        item = _get(f"majority#{day}")
        if item is None:
            return []
        asked = set(item.asked or ())
        return [_due(entry, day) for entry in sorted(item.due or ()) if entry not in asked]

    def claim_majority(self, due: MajorityDue) -> bool:
        _bind()
        entry = _entry(due)
        with dependency("majority claim"):
            try:
                FormItem(f"majority#{due.day}").update(
                    actions=[FormItem.asked.add({entry})],
                    condition=~FormItem.asked.contains(entry),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    return False
                raise
        return True

    def release_majority(self, due: MajorityDue) -> None:
        _bind()
        with dependency("majority release"):
            FormItem(f"majority#{due.day}").update(actions=[FormItem.asked.delete({_entry(due)})])


def _entry(due: MajorityDue) -> str:
    return f"{due.tenant}/{due.subject_id}/{due.consent_id}"


def _due(entry: str, day: str) -> MajorityDue:
    tenant, subject_id, consent_id = entry.split("/", 2)
    return MajorityDue(tenant, subject_id, consent_id, day)

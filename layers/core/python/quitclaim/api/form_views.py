"""The API's views for collecting quitclaims: the hosted form and consent imports.

The router has checked each operation's role before a view runs
(``quitclaim.api.route_access``); the tenant is always the caller's.
"""

from __future__ import annotations

from typing import Any

from quitclaim import bootstrap
from quitclaim.api import form_pages
from quitclaim.api.routing import Call, Posted, View


def publish_form(call: Call) -> Any:
    body = call.body
    return bootstrap.forms_service().publish(
        call.principal.tenant,
        body.version,
        {lang: {"title": t.title, "body": t.body} for lang, t in body.texts.items()},
        body.purposes,
        body.period_days,
    )


def get_form(call: Call, version: str) -> Any:
    return bootstrap.forms_service().version(call.principal.tenant, version)


def get_form_settings(call: Call) -> Any:
    return bootstrap.forms_service().settings(call.principal.tenant)


def update_form_settings(call: Call) -> Any:
    return bootstrap.forms_service().set_age_of_consent(
        call.principal.tenant, call.body.age_of_consent
    )


def create_form_link(call: Call) -> Any:
    return bootstrap.forms_service().link(
        call.principal.tenant,
        subject_id=call.body.subject_id,
        event=call.body.event,
        days=call.body.days,
        send=call.body.send,
    )


def open_form(query: Any, posted: Posted) -> Any:
    return form_pages.show(bootstrap.forms_service(), query.token, query.lang, posted)


def sign_form(query: Any, posted: Posted) -> Any:
    return form_pages.sign(
        bootstrap.forms_service(),
        query.token,
        query.lang,
        posted,
        admit=bootstrap.public_limits().admit,
    )


def create_import_uploads(call: Call) -> Any:
    b = call.body
    return bootstrap.consent_import_service().upload_urls(
        call.principal.tenant, b.documents, b.photos
    )


def import_consents(call: Call) -> Any:
    b = call.body
    report = bootstrap.consent_import_service().run_staged(
        call.principal.tenant,
        b.csv.encode("utf-8"),
        b.import_id,
        dry_run=b.dry_run,
        actor=call.principal.key_id,
    )
    return report.as_dict()


# The operations these views answer (``Router.bind``).
VIEWS: dict[str, View] = {
    "publishForm": publish_form,
    "getForm": get_form,
    "getFormSettings": get_form_settings,
    "updateFormSettings": update_form_settings,
    "createFormLink": create_form_link,
    "openForm": open_form,
    "signForm": sign_form,
    "createImportUploads": create_import_uploads,
    "importConsents": import_consents,
}

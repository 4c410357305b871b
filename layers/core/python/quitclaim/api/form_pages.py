"""The hosted quitclaim form's pages: server-rendered HTML, Dutch or English.

Every value written into a page goes through ``html.escape``. The pages work
without JavaScript (typed name plus a checkbox); ``/ui/form.js`` only adds the
optional drawn signature. Headers are the dashboard's strict set, except that
the page may post its form to this origin.
"""

from __future__ import annotations

import email.parser
import email.policy
import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from quitclaim.api.routing import Content, Posted, Reply
from quitclaim.api.static import PAGE_HEADERS
from quitclaim.domain.errors import (
    Conflict,
    EnrolmentRejected,
    Forbidden,
    NotFound,
    QuitclaimError,
    RejectedInput,
    ValidationFailed,
)
from quitclaim.domain.forms import LANGUAGES

if TYPE_CHECKING:
    # Types only: the use-case (and what it imports) loads with the composition root.
    from quitclaim.usecases.form_submissions import Forms, OpenForm, Signed

MAX_PHOTO_BYTES = 8 * 1024 * 1024
FIELDS = (
    "form_version",
    "name",
    "email",
    "date_of_birth",
    "guardian_name",
    "guardian_email",
    "guardian_signature",
    "signature",
    "signature_drawing",
    "agree",
    "biometric_consent",
)
HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"].replace(
        "form-action 'none'", "form-action 'self'"
    ),
}

T: dict[str, dict[str, str]] = {
    "en": {
        "purposes": "What may photographs of you be used for?",
        "purpose_hint": "Tick each use you allow; each is a separate choice.",
        "period": "Period",
        "period_text": "From today ({today}) for {days} days, unless you withdraw earlier.",
        "period_open": "From today ({today}) until you withdraw it.",
        "you": "About you",
        "name": "Full name",
        "email": "E-mail address (optional, for a copy and reminders)",
        "dob": "Date of birth",
        "guardian": "Parent or guardian",
        "guardian_hint": (
            "Only if the person is younger than {age}: then a parent or guardian signs."
        ),
        "guardian_name": "Name of the parent or guardian",
        "guardian_email": "E-mail address of the parent or guardian",
        "guardian_signature": "Signature of the parent or guardian: type their full name",
        "sign": "Signature",
        "signature": "Type your full name as your signature (adults)",
        "draw": "Or also draw your signature (optional)",
        "clear": "Clear drawing",
        "agree": "I have read the text above and agree to it",
        "photo": "Reference photo (optional)",
        "biometric": (
            "I explicitly consent to my face being compared with photographs "
            "(biometric data, GDPR Art. 9(2)(a)), only to find photos of me."
        ),
        "photo_label": "A photo of your face alone (JPEG or PNG)",
        "photo_hint": "Only used when you tick the box above.",
        "submit": "Sign",
        "error": "Please correct this",
        "done_title": "Thank you: your consent is recorded",
        "done": (
            "Recorded for: {purposes}. Valid until {until}. You can withdraw it at any "
            "time with the link in the confirmation e-mail, or by contacting {tenant}."
        ),
        "done_minor": "Signed by {guardian} as parent or guardian.",
        "done_photo": "Your reference photo is enrolled for face matching.",
        "done_hash": "Evidence document SHA-256: {sha}",
        "until_withdrawn": "you withdraw it",
        "problem_title": "This link cannot be used",
        "bad_link": "This link is not valid. Ask the organisation that sent it for a new one.",
        "link_expired": "This link has expired. Ask the organisation for a new one.",
        "already_signed": "This form was signed already. Nothing has changed.",
        "not_found": "There is no form to sign yet. Ask the organisation.",
        "contact": "Questions? Contact the organisation that sent you this link.",
        "lang_switch": "Nederlands",
        "version": "Form version {version}",
    },
    "nl": {
        "purposes": "Waarvoor mogen foto's van u gebruikt worden?",
        "purpose_hint": "Vink elk gebruik aan dat u toestaat; elk is een aparte keuze.",
        "period": "Periode",
        "period_text": "Vanaf vandaag ({today}) voor {days} dagen, tenzij u eerder intrekt.",
        "period_open": "Vanaf vandaag ({today}) tot u de toestemming intrekt.",
        "you": "Over u",
        "name": "Volledige naam",
        "email": "E-mailadres (optioneel, voor een kopie en herinneringen)",
        "dob": "Geboortedatum",
        "guardian": "Ouder of voogd",
        "guardian_hint": (
            "Alleen als de persoon jonger is dan {age}: dan tekent een ouder of voogd."
        ),
        "guardian_name": "Naam van de ouder of voogd",
        "guardian_email": "E-mailadres van de ouder of voogd",
        "guardian_signature": "Handtekening van de ouder of voogd: typ de volledige naam",
        "sign": "Ondertekening",
        "signature": "Typ uw volledige naam als handtekening (volwassenen)",
        "draw": "Of teken ook uw handtekening (optioneel)",
        "clear": "Tekening wissen",
        "agree": "Ik heb de tekst hierboven gelezen en ga ermee akkoord",
        "photo": "Referentiefoto (optioneel)",
        "biometric": (
            "Ik geef uitdrukkelijk toestemming om mijn gezicht te vergelijken met foto's "
            "(biometrische gegevens, AVG art. 9 lid 2 sub a), alleen om foto's van mij te vinden."
        ),
        "photo_label": "Een foto van alleen uw gezicht (JPEG of PNG)",
        "photo_hint": "Alleen gebruikt als u het vakje hierboven aanvinkt.",
        "submit": "Ondertekenen",
        "error": "Verbeter dit alstublieft",
        "done_title": "Dank u: uw toestemming is vastgelegd",
        "done": (
            "Vastgelegd voor: {purposes}. Geldig tot {until}. U kunt haar altijd intrekken "
            "met de link in de bevestigingsmail, of via {tenant}."
        ),
        "done_minor": "Ondertekend door {guardian} als ouder of voogd.",
        "done_photo": "Uw referentiefoto is opgenomen voor gezichtsvergelijking.",
        "done_hash": "SHA-256 van het bewijsdocument: {sha}",
        "until_withdrawn": "u haar intrekt",
        "problem_title": "Deze link kan niet gebruikt worden",
        "bad_link": "Deze link is niet geldig. Vraag de organisatie om een nieuwe.",
        "link_expired": "Deze link is verlopen. Vraag de organisatie om een nieuwe.",
        "already_signed": "Dit formulier is al ondertekend. Er is niets veranderd.",
        "not_found": "Er is nog geen formulier om te tekenen. Vraag het de organisatie.",
        "contact": "Vragen? Neem contact op met de organisatie die u deze link stuurde.",
        "lang_switch": "English",
        "version": "Formulierversie {version}",
    },
}
# The field a refusal names, as the label the person sees.
_LABELS = {
    "name": "name",
    "email": "email",
    "date_of_birth": "dob",
    "guardian_name": "guardian_name",
    "guardian_email": "guardian_email",
    "guardian_signature": "guardian_signature",
    "signature": "signature",
    "agree": "agree",
    "purposes": "purposes",
    "biometric_consent": "biometric",
    "photo": "photo",
    "photos[0]": "photo",
}


def language(chosen: str | None, accept: str, default: str) -> str:
    """The link's ``lang``, else the browser's first known language, else the tenant's."""
    if chosen in LANGUAGES:
        return str(chosen)
    for part in accept.split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return default if default in LANGUAGES else "en"


def parse(posted: Posted) -> tuple[dict[str, str], list[str], bytes | None]:
    """The posted fields, the ticked purposes, and the photo if one came (multipart)."""
    kind = posted.content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qs(posted.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise ValidationFailed("the form is not UTF-8", field="body") from None
        values = {k: v[0] for k, v in pairs.items() if k in FIELDS}
        return values, list(pairs.get("purposes", [])), None
    if kind == "multipart/form-data":
        return _multipart(posted)
    raise ValidationFailed("post the form as a web form", field="body")


def _multipart(posted: Posted) -> tuple[dict[str, str], list[str], bytes | None]:
    head = f"Content-Type: {posted.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + posted.body)
    if not message.is_multipart():
        raise ValidationFailed("the form is not multipart", field="body")
    values: dict[str, str] = {}
    purposes: list[str] = []
    photo: bytes | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "photo":
            if len(data) > MAX_PHOTO_BYTES:
                raise ValidationFailed("the photo is too large (8 MB at most)", field="photo")
            photo = data or None  # an empty file input sends an empty part
        elif name == "purposes":
            purposes.append(data.decode("utf-8", errors="replace"))
        elif name in FIELDS:
            values[name] = data.decode("utf-8", errors="replace")
    return values, purposes, photo


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(lang: str, title: str, main: str, status: int) -> Reply:
    body = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        '<link rel="stylesheet" href="/ui/form.css"></head>'
        f"<body><main>{main}</main></body></html>"
    )
    return Reply(status, Content(body, "text/html; charset=utf-8", dict(HEADERS)))


def _input(
    name: str,
    label: str,
    value: str,
    *,
    kind: str = "text",
    required: bool = False,
    error: str | None = None,
    autocomplete: str = "off",
    hint: str = "",
) -> str:
    described = []
    extra = ""
    if hint:
        described.append(f"{name}-hint")
    if error:
        described.append(f"{name}-error")
        extra += ' aria-invalid="true"'
    if described:
        extra += f' aria-describedby="{" ".join(described)}"'
    if required:
        extra += " required"
    return (
        f'<div class="field"><label for="{name}">{_e(label)}</label>'
        + (f'<p class="hint" id="{name}-hint">{_e(hint)}</p>' if hint else "")
        + (f'<p class="error" id="{name}-error">{_e(error)}</p>' if error else "")
        + f'<input id="{name}" name="{name}" type="{kind}" value="{_e(value)}" '
        f'autocomplete="{autocomplete}"{extra}></div>'
    )


def _check(
    name: str, label: str, checked: bool, error: str | None = None, value: str = "on"
) -> str:
    extra = ' aria-invalid="true" aria-describedby="' + name + '-error"' if error else ""
    return (
        '<div class="check">'
        + (f'<p class="error" id="{name}-error">{_e(error)}</p>' if error else "")
        + f'<input id="{name}" name="{name}" type="checkbox" value="{_e(value)}"'
        + (" checked" if checked else "")
        + f'{extra}><label for="{name}">{_e(label)}</label></div>'
    )


def show(forms: Forms, token: str, chosen: str | None, posted: Posted) -> Reply:
    """GET /form: the form, or a page that says why the link does not open it."""
    try:
        opened = forms.open(token)
    except QuitclaimError as exc:
        return _refused(exc, language(chosen, posted.accept_language, "en"))
    return form_page(opened, language(chosen, posted.accept_language, opened.language))


def sign(
    forms: Forms,
    token: str,
    chosen: str | None,
    posted: Posted,
    *,
    admit: Callable[[str, str], None] | None = None,
) -> Reply:
    """POST /form: sign, or the form again naming the field that was refused.

    ``admit(tenant, source_ip)`` bounds the signing rate (``RateLimited``: 429).
    """
    try:
        opened = forms.open(token)
    except QuitclaimError as exc:
        return _refused(exc, language(chosen, posted.accept_language, "en"))
    if admit is not None:
        admit(opened.tenant, posted.source_ip)
    lang = language(chosen, posted.accept_language, opened.language)
    values: dict[str, str] = {}
    purposes: list[str] = []
    try:
        values, purposes, photo = parse(posted)
        signed = forms.submit(
            token, values, purposes, ip=posted.source_ip, language=lang, photo=photo
        )
    except ValidationFailed as exc:
        status = 422 if isinstance(exc, EnrolmentRejected) else 400
        return form_page(opened, lang, values=values, purposes=purposes, error=exc, status=status)
    except RejectedInput as exc:
        # The photo could not be read (not an image, cut short): the form again, naming it.
        error = ValidationFailed(str(exc), field="photo", code=exc.code)
        return form_page(opened, lang, values=values, purposes=purposes, error=error, status=422)
    except QuitclaimError as exc:
        return _refused(exc, lang)
    return done_page(signed, lang)


def _refused(exc: QuitclaimError, lang: str) -> Reply:
    if isinstance(exc, Forbidden):
        code = exc.code if exc.code in ("bad_link", "link_expired") else "bad_link"
        return problem_page(code, lang, 403)
    if isinstance(exc, Conflict):
        return problem_page("already_signed", lang, 409)
    if isinstance(exc, NotFound):
        return problem_page("not_found", lang, 404)
    raise exc  # 5xx: the API's error mapping answers it


@dataclass(frozen=True)
class _Filled:
    """What one rendering of the form shows: texts, values, the refused field."""

    t: Mapping[str, str]
    given: Mapping[str, str]
    wrong: str | None  # the refused field's key in ``T`` (``dob``, ``purposes``, ...)
    message: str | None  # the refusal as the person reads it

    def err(self, key: str) -> str | None:
        return self.message if self.wrong == key else None


def _prefilled(opened: OpenForm, values: Mapping[str, str] | None) -> dict[str, str]:
    """What was posted, else what the personal link knows of the person."""
    given = dict(values or {})
    if opened.subject is not None and not values:
        given.setdefault("name", opened.subject.display_name)
        if opened.subject.email:
            given.setdefault("email", opened.subject.email)
        if opened.subject.date_of_birth:
            given.setdefault("date_of_birth", opened.subject.date_of_birth.isoformat())
    return given


def form_page(
    opened: OpenForm,
    lang: str,
    *,
    values: Mapping[str, str] | None = None,
    purposes: Sequence[str] = (),
    error: ValidationFailed | None = None,
    status: int = 200,
) -> Reply:
    """The form, blank (or prefilled from the personal link), or again with a refusal."""
    t = T[lang]
    wrong = _LABELS.get(error.field, error.field) if error is not None else None
    message = None
    if error is not None:
        # The field as the person reads it, then the server's words (naming the field).
        label = t.get(str(wrong))
        message = f"{label}: {error}" if label else str(error)
    filled = _Filled(t, _prefilled(opened, values), wrong, message)
    action = f"/form?token={quote(opened.token, safe='')}&amp;lang={lang}"
    parts = [
        _heading(opened, lang, filled),
        f'<form method="post" action="{action}" enctype="multipart/form-data" novalidate>'
        f'<input type="hidden" name="form_version" value="{_e(opened.form.version)}">',
        _purposes(opened, purposes, filled),
        _you(filled),
        _guardian(opened, filled),
        _signing(filled),
        _photo(filled),
        f'<button type="submit">{_e(t["submit"])}</button></form>'
        f'<p class="contact">{_e(t["contact"])}</p>'
        '<script src="/ui/form.js"></script>',
    ]
    return _page(lang, opened.form.text(lang).title, "".join(parts), status)


def _heading(opened: OpenForm, lang: str, filled: _Filled) -> str:
    """Language switch, title, version, the refusal's summary, the form's text."""
    t, form = filled.t, opened.form
    text = form.text(lang)
    other = "nl" if lang == "en" else "en"
    parts = [
        f'<p class="lang"><a href="/form?token={quote(opened.token, safe="")}&amp;lang={other}" '
        f'lang="{other}" hreflang="{other}">{_e(t["lang_switch"])}</a></p>',
        f"<h1>{_e(text.title)}</h1>",
        f'<p class="version">{_e(t["version"].format(version=form.version))}</p>',
    ]
    if filled.message is not None:
        anchors = {
            "dob": "date_of_birth",
            "biometric": "biometric_consent",
            "purposes": f"purpose-{form.purposes[0]}",
        }
        target = anchors.get(str(filled.wrong), str(filled.wrong))
        parts.append(
            '<div class="summary" role="alert" tabindex="-1" id="error-summary">'
            f"<h2>{_e(t['error'])}</h2>"
            f'<p><a href="#{_e(target)}">{_e(filled.message)}</a></p></div>'
        )
    parts.append(
        '<div class="text">'
        + "".join(f"<p>{_e(p)}</p>" for p in text.body.split("\n") if p.strip())
        + "</div>"
    )
    return "".join(parts)


def _purposes(opened: OpenForm, purposes: Sequence[str], filled: _Filled) -> str:
    """One box per purpose (each a separate choice), then the period they hold for."""
    t, form = filled.t, opened.form
    boxes = "".join(
        _check(f"purpose-{p}", p, p in purposes, value=p).replace(
            f'name="purpose-{p}"', 'name="purposes"'
        )
        for p in form.purposes
    )
    period = (
        t["period_text"].format(today=opened.today, days=form.period_days)
        if form.period_days
        else t["period_open"].format(today=opened.today)
    )
    return (
        f"<fieldset><legend>{_e(t['purposes'])}</legend>"
        f'<p class="hint">{_e(t["purpose_hint"])}</p>'
        + (
            f'<p class="error" id="purposes-error">{_e(filled.message)}</p>'
            if filled.wrong == "purposes"
            else ""
        )
        + boxes
        + "</fieldset>"
        + f"<h2>{_e(t['period'])}</h2><p>{_e(period)}</p>"
    )


def _you(filled: _Filled) -> str:
    t, given, err = filled.t, filled.given, filled.err
    return (
        f"<fieldset><legend>{_e(t['you'])}</legend>"
        + _input(
            "name",
            t["name"],
            given.get("name", ""),
            required=True,
            error=err("name"),
            autocomplete="name",
        )
        + _input(
            "email",
            t["email"],
            given.get("email", ""),
            kind="email",
            error=err("email"),
            autocomplete="email",
        )
        + _input(
            "date_of_birth",
            t["dob"],
            given.get("date_of_birth", ""),
            kind="date",
            required=True,
            error=err("dob"),
            autocomplete="bday",
        )
        + "</fieldset>"
    )


def _guardian(opened: OpenForm, filled: _Filled) -> str:
    """A guardian's fields, for a person under the tenant's age of consent."""
    t, given, err = filled.t, filled.given, filled.err
    age = opened.settings.age_of_consent
    return (
        f"<fieldset><legend>{_e(t['guardian'])}</legend>"
        f'<p class="hint">{_e(t["guardian_hint"].format(age=age))}</p>'
        + _input(
            "guardian_name",
            t["guardian_name"],
            given.get("guardian_name", ""),
            error=err("guardian_name"),
        )
        + _input(
            "guardian_email",
            t["guardian_email"],
            given.get("guardian_email", ""),
            kind="email",
            error=err("guardian_email"),
        )
        + _input(
            "guardian_signature",
            t["guardian_signature"],
            given.get("guardian_signature", ""),
            error=err("guardian_signature"),
        )
        + "</fieldset>"
    )


def _signing(filled: _Filled) -> str:
    """The typed signature (a drawn one where JavaScript runs) and the agreement."""
    t, given, err = filled.t, filled.given, filled.err
    return (
        f"<fieldset><legend>{_e(t['sign'])}</legend>"
        + _input("signature", t["signature"], given.get("signature", ""), error=err("signature"))
        + f'<div class="draw" hidden><p id="draw-label">{_e(t["draw"])}</p>'
        '<canvas id="drawn" width="400" height="120" role="img" aria-labelledby="draw-label">'
        "</canvas>"
        f'<button type="button" id="clear-drawing">{_e(t["clear"])}</button>'
        '<input type="hidden" name="signature_drawing" id="signature_drawing" value=""></div>'
        + _check("agree", t["agree"], bool(given.get("agree")), err("agree"))
        + "</fieldset>"
    )


def _photo(filled: _Filled) -> str:
    """The optional photo, with its own biometric consent."""
    t, given, err = filled.t, filled.given, filled.err
    return (
        f"<fieldset><legend>{_e(t['photo'])}</legend>"
        + _check(
            "biometric_consent",
            t["biometric"],
            bool(given.get("biometric_consent")),
            err("biometric"),
        )
        + '<div class="field"><label for="photo">'
        + _e(t["photo_label"])
        + "</label>"
        + f'<p class="hint" id="photo-hint">{_e(t["photo_hint"])}</p>'
        + (
            f'<p class="error" id="photo-error">{_e(filled.message)}</p>'
            if filled.wrong == "photo"
            else ""
        )
        + '<input id="photo" name="photo" type="file" accept="image/jpeg,image/png" '
        'aria-describedby="photo-hint"></div></fieldset>'
    )


def done_page(signed: Signed, lang: str) -> Reply:
    t = T[lang]
    until = _day(signed.expires_at) if signed.expires_at else t["until_withdrawn"]
    lines = [
        t["done"].format(purposes=", ".join(signed.purposes), until=until, tenant=signed.tenant)
    ]
    if signed.minor and signed.guardian:
        lines.append(t["done_minor"].format(guardian=signed.guardian))
    if signed.enrolled:
        lines.append(t["done_photo"])
    lines.append(t["done_hash"].format(sha=signed.document_sha256))
    main = f"<h1>{_e(t['done_title'])}</h1>" + "".join(f"<p>{_e(x)}</p>" for x in lines)
    return _page(lang, t["done_title"], main, 201)


def problem_page(code: str, lang: str, status: int, tenant: str = "") -> Reply:
    t = T[lang]
    text = t.get(code) or t["bad_link"]
    main = (
        f"<h1>{_e(t['problem_title'])}</h1><p>{_e(text.format(tenant=tenant or '-'))}</p>"
        f"<p>{_e(t['contact'])}</p>"
    )
    return _page(lang, t["problem_title"], main, status)


def _day(moment: datetime) -> str:
    return moment.date().isoformat()

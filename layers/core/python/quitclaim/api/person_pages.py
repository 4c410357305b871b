"""Server-rendered pages for the person in a photo: e-mailed links and requests.

Plain HTML built here with every value escaped (``html.escape``); no template
engine, no JavaScript, one style sheet of the dashboard's folder. A form posts
back to the same route; the pages send the dashboard's strict headers, with
``form-action 'self'`` since these pages post forms.

Language: the person's own where stored, else the browser's (Accept-Language),
else English. Dutch and English.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from urllib.parse import quote

from quitclaim.api.routing import Content
from quitclaim.api.static import PAGE_HEADERS

LANGUAGES = ("en", "nl")
PERSON_HEADERS = {
    **PAGE_HEADERS,
    # The pages name a person's consent or request: never kept in a cache.
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
HTML = "text/html; charset=utf-8"

MONTHS = {
    "en": "January February March April May June July August September October November December",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
}

T: dict[str, dict[str, str]] = {
    "en": {
        "brand": "Quitclaim",
        "withdraw.title": "Withdraw your consent",
        "withdraw.intro": (
            "You are about to withdraw the consent you gave {tenant} to use photographs of you for:"
        ),
        "withdraw.what": (
            "What will change: photographs of you are taken out of the published library for "
            "these purposes and are not published for them again."
        ),
        "withdraw.button": "Withdraw my consent",
        "renew.title": "Renew your consent",
        "renew.intro": "Your consent to {tenant} to use photographs of you covers:",
        "renew.what": "It now ends on {end}. Renewing makes it run until {until}.",
        "renew.button": "Renew my consent",
        "confirm.note": "Nothing changes until you press the button.",
        "withdraw.done.title": "Your consent is withdrawn",
        "withdraw.done.next": (
            "What happens next: photographs of you are being taken out of the published library "
            "for these purposes; this takes less than a minute. You will get a receipt by e-mail. "
            "To consent again later, ask {contact}."
        ),
        "renew.done.title": "Your consent is renewed",
        "renew.done.next": (
            "Your consent now runs until {until}. You will get a receipt by e-mail, with a link "
            "to withdraw it at any time."
        ),
        "purposes": "Purposes",
        "already_withdrawn.title": "Already withdrawn",
        "already_withdrawn.text": (
            "This consent was withdrawn already. Nothing more needs to happen: photographs of you "
            "are not published for it."
        ),
        "link_used.title": "This link was used already",
        "link_used.text": (
            "This link has done its work, or your consent changed since the e-mail was sent. "
            "Nothing was changed now."
        ),
        "link_expired.title": "This link has expired",
        "link_expired.text": "This link is no longer valid. Nothing was changed.",
        "bad_link.title": "This link is not valid",
        "bad_link.text": (
            "This link is incomplete or was altered. Nothing was changed. Use the link exactly as "
            "it is in the e-mail."
        ),
        "error.title": "Something went wrong",
        "error.text": "Nothing was changed. Please try again later.",
        "contact": "Questions? Contact {contact}.",
        "contact.unknown": "Questions? Contact the organisation that sent you the e-mail.",
        "open": "no end date",
    },
    "nl": {
        "brand": "Quitclaim",
        "withdraw.title": "Uw toestemming intrekken",
        "withdraw.intro": (
            "U staat op het punt de toestemming in te trekken die u {tenant} gaf om foto's van u "
            "te gebruiken voor:"
        ),
        "withdraw.what": (
            "Wat verandert: foto's van u worden voor deze doelen uit de gepubliceerde bibliotheek "
            "gehaald en daarvoor niet meer gepubliceerd."
        ),
        "withdraw.button": "Mijn toestemming intrekken",
        "renew.title": "Uw toestemming verlengen",
        "renew.intro": "Uw toestemming aan {tenant} om foto's van u te gebruiken geldt voor:",
        "renew.what": "Ze loopt nu af op {end}. Verlengen laat haar lopen tot {until}.",
        "renew.button": "Mijn toestemming verlengen",
        "confirm.note": "Er verandert niets tot u op de knop drukt.",
        "withdraw.done.title": "Uw toestemming is ingetrokken",
        "withdraw.done.next": (
            "Wat er nu gebeurt: foto's van u worden voor deze doelen uit de gepubliceerde "
            "bibliotheek gehaald; dat duurt minder dan een minuut. U krijgt een bevestiging per "
            "e-mail. Wilt u later weer toestemming geven, vraag het {contact}."
        ),
        "renew.done.title": "Uw toestemming is verlengd",
        "renew.done.next": (
            "Uw toestemming loopt nu tot {until}. U krijgt een bevestiging per e-mail, met een "
            "link om haar altijd in te trekken."
        ),
        "purposes": "Doelen",
        "already_withdrawn.title": "Al ingetrokken",
        "already_withdrawn.text": (
            "Deze toestemming is al ingetrokken. Er hoeft niets meer te gebeuren: foto's van u "
            "worden er niet voor gepubliceerd."
        ),
        "link_used.title": "Deze link is al gebruikt",
        "link_used.text": (
            "Deze link heeft zijn werk gedaan, of uw toestemming is gewijzigd sinds de e-mail. "
            "Er is nu niets veranderd."
        ),
        "link_expired.title": "Deze link is verlopen",
        "link_expired.text": "Deze link is niet meer geldig. Er is niets veranderd.",
        "bad_link.title": "Deze link is niet geldig",
        "bad_link.text": (
            "Deze link is onvolledig of gewijzigd. Er is niets veranderd. Gebruik de link precies "
            "zoals hij in de e-mail staat."
        ),
        "error.title": "Er ging iets mis",
        "error.text": "Er is niets veranderd. Probeer het later opnieuw.",
        "contact": "Vragen? Neem contact op met {contact}.",
        "contact.unknown": "Vragen? Neem contact op met de organisatie die u de e-mail stuurde.",
        "open": "geen einddatum",
    },
}


def wants_html(accept: str | None) -> bool:
    """A browser (asks for HTML first); an API client that asks for JSON, or nothing, gets JSON."""
    best_html = best_json = -1.0
    for position, part in enumerate((accept or "").split(",")):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        rank = q - position / 1000  # ties: the one listed first
        media = media.strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            best_html = max(best_html, rank)
        elif media == "application/json":
            best_json = max(best_json, rank)
    return best_html > 0 and best_html > best_json


def pick_language(stored: str | None, accept_language: str | None) -> str:
    """The person's stored language, else the browser's first of nl/en, else en."""
    if stored in LANGUAGES:
        return str(stored)
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        name, _, value = params.strip().partition("=")
        if name == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in LANGUAGES and q > 0:
            ranked.append((-q, position, base))
    return sorted(ranked)[0][2] if ranked else "en"


def day(at: datetime | None, lang: str) -> str:
    if at is None:
        return T[lang]["open"]
    if lang == "nl":
        return f"{at.day} {MONTHS['nl'].split()[at.month - 1]} {at.year}"
    return f"{at.day} {MONTHS['en'].split()[at.month - 1]} {at.year}"


def page(lang: str, title: str, body: str) -> Content:
    """A whole page; ``title`` is plain text, ``body`` HTML built with ``escape``."""
    text = (
        "<!doctype html>\n"
        f'<html lang="{escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{escape(title)} · Quitclaim</title>\n"
        '<link rel="stylesheet" href="/ui/person.css">\n</head>\n<body>\n'
        f'<header><p class="brand">{escape(T[lang]["brand"])}</p></header>\n'
        f"<main>\n<h1>{escape(title)}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )
    return Content(text, HTML, dict(PERSON_HEADERS))


def contact_line(lang: str, contact: str | None) -> str:
    if not contact:
        return f'<p class="contact">{escape(T[lang]["contact.unknown"])}</p>'
    if "@" in contact:
        shown = f'<a href="mailto:{escape(quote(contact, safe="@.+-_"))}">{escape(contact)}</a>'
    else:
        shown = escape(contact)
    return f'<p class="contact">{escape(T[lang]["contact"]).format(contact=shown)}</p>'


def _purposes(lang: str, purposes: tuple[str, ...]) -> str:
    items = "".join(f"<li>{escape(p)}</li>" for p in purposes)
    return f'<ul class="purposes" aria-label="{escape(T[lang]["purposes"])}">{items}</ul>'


def link_confirm(
    lang: str,
    action: str,
    token: str,
    *,
    tenant: str,
    purposes: tuple[str, ...],
    expires_at: datetime | None,
    renews_until: datetime | None,
    contact: str | None,
) -> Content:
    """The page a link opens: what will change, and the one button that does it."""
    t = T[lang]
    intro = escape(t[f"{action}.intro"]).format(tenant=f"<strong>{escape(tenant)}</strong>")
    if action == "renew":
        what = escape(t["renew.what"]).format(
            end=escape(day(expires_at, lang)), until=escape(day(renews_until, lang))
        )
    else:
        what = escape(t["withdraw.what"])
    target = f"/links/{quote(action)}?token={quote(token, safe='')}"
    body = (
        f"<p>{intro}</p>\n{_purposes(lang, purposes)}\n<p>{what}</p>\n"
        f'<form method="post" action="{escape(target)}">\n'
        f'<button type="submit" class="primary">{escape(t[f"{action}.button"])}</button>\n'
        f'</form>\n<p class="note">{escape(t["confirm.note"])}</p>\n'
        f"{contact_line(lang, contact)}"
    )
    return page(lang, t[f"{action}.title"], body)


def link_done(
    lang: str,
    action: str,
    *,
    tenant: str,
    purposes: tuple[str, ...],
    expires_at: datetime | None,
    contact: str | None,
) -> Content:
    """After the button: what happened, and what happens next."""
    t = T[lang]
    shown_contact = contact or tenant
    if action == "renew":
        nxt = escape(t["renew.done.next"]).format(until=escape(day(expires_at, lang)))
    else:
        nxt = escape(t["withdraw.done.next"]).format(contact=escape(shown_contact))
    body = (
        f'{_purposes(lang, purposes)}\n<p role="status" class="next">{nxt}</p>\n'
        f"{contact_line(lang, contact)}"
    )
    return page(lang, t[f"{action}.done.title"], body)


def link_problem(lang: str, code: str, contact: str | None) -> Content:
    """An expired, used or forged link: say so, and whom to ask."""
    t = T[lang]
    key = code if f"{code}.title" in t else "error"
    body = f"<p>{escape(t[f'{key}.text'])}</p>\n{contact_line(lang, contact)}"
    return page(lang, t[f"{key}.title"], body)


# ---------------------------------------------------------------- requests (Art. 15 / 17)

R: dict[str, dict[str, str]] = {
    "en": {
        "form.title": "Ask for your data, or its erasure",
        "form.intro": (
            "Ask {tenant} for a copy of the photos and data it holds about you (access), or to "
            "erase them (erasure). We send a link to your e-mail address to check that it is "
            "yours; nothing happens until you follow it."
        ),
        "form.kind": "What do you ask for?",
        "form.access": "A copy of my data (access, GDPR Art. 15)",
        "form.erasure": "Erase my data (erasure, GDPR Art. 17)",
        "form.email": "Your e-mail address",
        "form.button": "Send me the link",
        "sent.title": "Check your inbox",
        "sent.text": (
            "If this address can receive e-mail, a link to confirm your request is on its way. "
            "It works for 24 hours. Nothing happens until you follow it."
        ),
        "verify.title": "Confirm your request",
        "verify.access": "You ask {tenant} for a copy of the data it holds about you.",
        "verify.erasure": "You ask {tenant} to erase the data it holds about you.",
        "verify.button": "Confirm my request",
        "done.title": "Your request is registered",
        "done.deadline": "{tenant} answers by {deadline} at the latest (one month).",
        "done.access": (
            "Your data is ready. Download it here; the link expires in {days} days and was also "
            "sent to you by e-mail:"
        ),
        "done.download": "Download your data ({n})",
        "done.none": (
            "We found no records under this address. Your request is registered: {tenant} "
            "checks it and answers by {deadline}."
        ),
        "done.erasure": (
            "What happens next: an officer of {tenant} checks your request and erases your data "
            "(or tells you why some must be kept) by {deadline}."
        ),
        "already.title": "Your request is registered already",
        "already.text": "You confirmed this request before. Nothing more needs to happen now.",
    },
    "nl": {
        "form.title": "Vraag uw gegevens op, of laat ze wissen",
        "form.intro": (
            "Vraag {tenant} om een kopie van de foto's en gegevens over u (inzage), of om ze te "
            "wissen. We sturen een link naar uw e-mailadres om te controleren dat het van u is; "
            "er gebeurt niets tot u die volgt."
        ),
        "form.kind": "Wat vraagt u?",
        "form.access": "Een kopie van mijn gegevens (inzage, AVG art. 15)",
        "form.erasure": "Mijn gegevens wissen (AVG art. 17)",
        "form.email": "Uw e-mailadres",
        "form.button": "Stuur mij de link",
        "sent.title": "Kijk in uw inbox",
        "sent.text": (
            "Als dit adres e-mail kan ontvangen, is er een link onderweg om uw verzoek te "
            "bevestigen. Hij werkt 24 uur. Er gebeurt niets tot u hem volgt."
        ),
        "verify.title": "Bevestig uw verzoek",
        "verify.access": "U vraagt {tenant} om een kopie van de gegevens over u.",
        "verify.erasure": "U vraagt {tenant} om de gegevens over u te wissen.",
        "verify.button": "Mijn verzoek bevestigen",
        "done.title": "Uw verzoek is geregistreerd",
        "done.deadline": "{tenant} antwoordt uiterlijk op {deadline} (één maand).",
        "done.access": (
            "Uw gegevens staan klaar. Download ze hier; de link verloopt over {days} dagen en is "
            "u ook per e-mail gestuurd:"
        ),
        "done.download": "Download uw gegevens ({n})",
        "done.none": (
            "We vonden geen gegevens onder dit adres. Uw verzoek is geregistreerd: {tenant} "
            "bekijkt het en antwoordt uiterlijk op {deadline}."
        ),
        "done.erasure": (
            "Wat er nu gebeurt: een functionaris van {tenant} bekijkt uw verzoek en wist uw "
            "gegevens (of legt uit waarom iets bewaard moet blijven) uiterlijk op {deadline}."
        ),
        "already.title": "Uw verzoek is al geregistreerd",
        "already.text": "U bevestigde dit verzoek al eerder. Er hoeft nu niets meer te gebeuren.",
    },
}
ERRORS = {
    "en": {"email": "Enter a valid e-mail address.", "kind": "Choose what you ask for."},
    "nl": {"email": "Vul een geldig e-mailadres in.", "kind": "Kies wat u vraagt."},
}


def _fill(text: str, **values: str) -> str:
    """``text`` escaped, with each value escaped and inserted."""
    return escape(text).format(**{k: escape(v) for k, v in values.items()})


def request_form(
    lang: str, tenant: str, *, email: str = "", kind: str = "access", error: str | None = None
) -> Content:
    """The public page where a person asks for access or erasure by e-mail address."""
    r = R[lang]
    problem = ""
    described = ""
    if error is not None:
        message = ERRORS[lang].get(error, ERRORS[lang]["email"])
        problem = f'<p id="form-error" class="error" role="alert">{escape(message)}</p>\n'
        described = ' aria-describedby="form-error" aria-invalid="true"'
    choices = "".join(
        f'<div class="choice"><input type="radio" id="kind-{k}" name="kind" value="{k}"'
        f"{' checked' if kind == k else ''}>"
        f'<label for="kind-{k}">{escape(r[f"form.{k}"])}</label></div>'
        for k in ("access", "erasure")
    )
    body = (
        f"<p>{_fill(r['form.intro'], tenant=tenant)}</p>\n{problem}"
        f'<form method="post" action="/requests/{escape(quote(tenant))}">\n'
        f"<fieldset><legend>{escape(r['form.kind'])}</legend>{choices}</fieldset>\n"
        f'<label for="email">{escape(r["form.email"])}</label>\n'
        f'<input type="email" id="email" name="email" autocomplete="email" required '
        f'value="{escape(email)}"{described}>\n'
        f'<p><button type="submit" class="primary">{escape(r["form.button"])}</button></p>\n'
        "</form>"
    )
    return page(lang, r["form.title"], body)


def request_sent(lang: str) -> Content:
    """The same page for every address: nothing tells a known one from another."""
    r = R[lang]
    return page(lang, r["sent.title"], f'<p role="status">{escape(r["sent.text"])}</p>')


def request_verify(lang: str, tenant: str, kind: str, token: str) -> Content:
    r = R[lang]
    target = f"/requests/{quote(tenant)}/verify?token={quote(token, safe='')}"
    body = (
        f"<p>{_fill(r[f'verify.{kind}'], tenant=tenant)}</p>\n"
        f'<form method="post" action="{escape(target)}">\n'
        f'<button type="submit" class="primary">{escape(r["verify.button"])}</button>\n'
        f'</form>\n<p class="note">{escape(T[lang]["confirm.note"])}</p>'
    )
    return page(lang, r["verify.title"], body)


def request_done(
    lang: str,
    tenant: str,
    *,
    kind: str,
    deadline: datetime | None,
    downloads: tuple[str, ...],
    found: bool,
    already: bool,
    days: int,
    contact: str | None,
) -> Content:
    """After verification: registered, its deadline, and (access) the download links."""
    r = R[lang]
    if already:
        body = f'<p role="status">{escape(r["already.text"])}</p>\n{contact_line(lang, contact)}'
        return page(lang, r["already.title"], body)
    when = day(deadline, lang)
    parts = [f'<p role="status">{_fill(r["done.deadline"], tenant=tenant, deadline=when)}</p>']
    if kind == "access" and downloads:
        parts.append(f"<p>{_fill(r['done.access'], days=str(days))}</p>")
        items = "".join(
            f'<li><a href="{escape(url)}">{escape(r["done.download"].format(n=n))}</a></li>'
            for n, url in enumerate(downloads, 1)
        )
        parts.append(f'<ul class="downloads">{items}</ul>')
    elif kind == "access" and not found:
        parts.append(f"<p>{_fill(r['done.none'], tenant=tenant, deadline=when)}</p>")
    else:
        parts.append(
            f'<p class="next">{_fill(r["done.erasure"], tenant=tenant, deadline=when)}</p>'
        )
    parts.append(contact_line(lang, contact))
    return page(lang, r["done.title"], "\n".join(parts))

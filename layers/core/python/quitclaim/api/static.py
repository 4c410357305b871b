"""The review dashboard's files: the page at ``/`` and its assets under ``/ui/``.

Plain HTML, CSS and JavaScript shipped inside the package (no build step, no
CDN, nothing fetched from elsewhere). They hold no data: the page calls this
API with the key the person signs in with, like any other client.
"""

from __future__ import annotations

import html
import urllib.parse
from functools import lru_cache
from importlib import resources

from quitclaim.api.routing import Content
from quitclaim.api.schemas import UI_FILE_PATTERN
from quitclaim.domain.errors import NotFound

PAGE = "index.html"
_TYPES = {
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
    "html": "text/html; charset=utf-8",
}
# The page runs only its own scripts and talks only to this origin. Previews
# arrive as data: URLs; a signed document is opened as a blob: URL.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-src blob:; form-action 'none'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@lru_cache(maxsize=1)
def files() -> dict[str, str]:
    """Every file of the dashboard by name, read once per container."""
    folder = resources.files("quitclaim.api") / "ui"
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.is_file() and (entry.name == PAGE or UI_FILE_PATTERN.fullmatch(entry.name))
    }


SIGN_IN_PLACEHOLDER = '<meta name="qc-signin">'


def page(client_id: str = "", sign_in_url: str = "") -> Content:
    """The page; with a user pool, it names the app client and the hosted sign-in.

    The page then exchanges its code at ``<sign_in_url>/oauth2/token``: that
    origin (and only that one) joins ``connect-src`` (docs/sign-in.md).
    """
    text, headers = files()[PAGE], dict(PAGE_HEADERS)
    split = urllib.parse.urlsplit(sign_in_url)
    if client_id and split.scheme in ("https", "http") and split.netloc:
        origin = f"{split.scheme}://{split.netloc}"
        meta = (
            f'<meta name="qc-signin" data-client-id="{html.escape(client_id)}" '
            f'data-url="{html.escape(origin)}">'
        )
        text = text.replace(SIGN_IN_PLACEHOLDER, meta, 1)
        headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
            "connect-src 'self'", f"connect-src 'self' {origin}", 1
        )
    return Content(text, _TYPES["html"], headers)


def ui_file(name: str) -> Content:
    """One of the page's files; anything else is 404 (no paths, no other folders)."""
    if name == PAGE or name not in files():
        raise NotFound("no such file")
    return Content(files()[name], _TYPES[name.rsplit(".", 1)[1]])

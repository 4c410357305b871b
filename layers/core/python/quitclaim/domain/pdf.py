"""A minimal PDF writer: pages of wrapped text in Helvetica, nothing else.

Enough for an evidence document (the form's text and the answers). Written by
hand so the layer carries no PDF library: PDF 1.4, one font (a standard Type 1
font every reader has, WinAnsi encoding: Dutch and English text fit in it;
anything outside Latin-1 is replaced by '?'), uncompressed content streams.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

_PAGE_W, _PAGE_H = 595, 842  # A4 in points
_MARGIN = 56
_SIZE = 10
_LEADING = 14
_WRAP = 95  # characters per line at 10 pt Helvetica across A4 less margins
_LINES_PER_PAGE = (_PAGE_H - 2 * _MARGIN) // _LEADING


def _escape(line: str) -> bytes:
    data = line.encode("cp1252", errors="replace")
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def wrap(paragraphs: Iterable[str]) -> list[str]:
    """Paragraphs as lines of at most ``_WRAP`` characters (blank lines kept)."""
    lines: list[str] = []
    for paragraph in paragraphs:
        for part in paragraph.replace("\r", "").split("\n"):
            lines.extend(textwrap.wrap(part, _WRAP, replace_whitespace=True) or [""])
    return lines


def _page_stream(lines: Sequence[str], bold_first: bool) -> bytes:
    out = [b"BT", f"/F1 {_SIZE} Tf {_LEADING} TL {_MARGIN} {_PAGE_H - _MARGIN} Td".encode()]
    for index, line in enumerate(lines):
        font = b"/F2" if bold_first and index == 0 else b"/F1"
        out.append(font + f" {_SIZE} Tf (".encode() + _escape(line) + b") Tj T*")
    out.append(b"ET")
    return b"\n".join(out)


def render(title: str, paragraphs: Iterable[str], *, created: str) -> bytes:
    """A PDF of ``title`` then ``paragraphs``; ``created`` is a PDF date (D:YYYYMMDDHHmmSSZ)."""
    lines = [title, "", *wrap(paragraphs)]
    pages = [lines[i : i + _LINES_PER_PAGE] for i in range(0, len(lines), _LINES_PER_PAGE)]
    # Objects: 1 catalog, 2 pages, 3 font, 4 bold font, 5 info, then (page, content) pairs.
    objects: list[bytes] = [b"", b"", b"", b"", b""]
    kids = []
    for number, page in enumerate(pages):
        stream = _page_stream(page, number == 0)
        page_id = len(objects) + 1
        kids.append(f"{page_id} 0 R")
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_W} {_PAGE_H}] "
                f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {page_id + 1} 0 R >>"
            ).encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    font = "<< /Type /Font /Subtype /Type1 /BaseFont /{} /Encoding /WinAnsiEncoding >>"
    objects[2] = font.format("Helvetica").encode()
    objects[3] = font.format("Helvetica-Bold").encode()
    objects[4] = (
        b"<< /Producer (Quitclaim) /Title ("
        + _escape(title)
        + b") /CreationDate ("
        + (created.encode("ascii") + b") >>")
    )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 5 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)

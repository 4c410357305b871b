"""The accuracy audit's HTML report with its SVG plots, drawn here (no plotting library)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

_W, _H, _PAD = 480, 260, 40


def _e(value: object) -> str:
    return html.escape(str(value))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def _rate(rate: Mapping[str, Any]) -> str:
    if rate.get("status") != "ok":
        return f"not enough data ({rate['errors']}/{rate['comparisons']}, {rate['people']} people)"
    low, high = rate["ci95"]
    return (
        f"{_pct(rate['rate'])} [{_pct(low)} to {_pct(high)}] "
        f"({rate['errors']}/{rate['comparisons']}, {rate['people']} people)"
    )


def _frame(title: str, body: list[str], x_label: str, y_label: str) -> str:
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
            f'role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>',
            f'<rect x="{_PAD}" y="10" width="{_W - _PAD - 10}" height="{_H - _PAD - 10}" '
            'fill="none" stroke="#999"/>',
            *body,
            f'<text x="{_W / 2}" y="{_H - 8}" text-anchor="middle" font-size="11">'
            f"{_e(x_label)}</text>",
            f'<text x="12" y="{_H / 2}" font-size="11" transform="rotate(-90 12 {_H / 2})" '
            f'text-anchor="middle">{_e(y_label)}</text>',
            "</svg>",
        ]
    )


def _x(v: float, top: float) -> float:
    return _PAD + (_W - _PAD - 10) * (v / top if top else 0)


def _y(v: float, top: float) -> float:
    return _H - _PAD - (_H - _PAD - 20) * (v / top if top else 0)


_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def rates_svg(title: str, rows: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """One bar per group with its 95 % interval; hatched label when there is not enough data."""
    top = max(
        [1e-9]
        + [
            max(r["rate"], (r["ci95"] or [0, 0])[1] or 0)
            for _, r in rows
            if r.get("status") == "ok"
        ]
    )
    body: list[str] = []
    step = (_W - _PAD - 10) / max(1, len(rows))
    for k, (name, r) in enumerate(rows):
        x0 = _PAD + k * step + step * 0.2
        width = step * 0.6
        if r.get("status") == "ok":
            y = _y(r["rate"], top)
            body.append(
                f'<rect x="{x0:.1f}" y="{y:.1f}" width="{width:.1f}" height="{_H - _PAD - y:.1f}" '
                f'fill="{_COLOURS[k % len(_COLOURS)]}"/>'
            )
            low, high = r["ci95"]
            cx = x0 + width / 2
            body.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{_y(low, top):.1f}" '
                f'y2="{_y(high, top):.1f}" stroke="#000" stroke-width="2"/>'
            )
        else:
            body.append(
                f'<text x="{x0 + width / 2:.1f}" y="{_H - _PAD - 6}" font-size="9" '
                'text-anchor="middle">n/a</text>'
            )
        body.append(
            f'<text x="{x0 + width / 2:.1f}" y="{_H - _PAD + 12}" font-size="9" '
            f'text-anchor="middle">{_e(name)}</text>'
        )
    body.append(f'<text x="{_PAD + 4}" y="22" font-size="9">max {_pct(top)}</text>')
    return _frame(title, body, "group", "rate")


def det_svg(curves: Mapping[str, Sequence[Sequence[float]]]) -> str:
    """FNMR against FMR per group as the threshold moves (linear axes)."""
    body: list[str] = []
    for k, (name, points) in enumerate(curves.items()):
        xy = [(p[1], p[2]) for p in points]
        if not xy:
            continue
        path = " ".join(f"{_x(a, 1):.1f},{_y(b, 1):.1f}" for a, b in xy)
        colour = _COLOURS[k % len(_COLOURS)]
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        body.append(
            f'<text x="{_W - 150}" y="{24 + 12 * k}" font-size="10" fill="{colour}">'
            f"{_e(name)}</text>"
        )
    return _frame("DET curves per group", body, "false match rate", "false non-match rate")


def histogram_svg(
    bins: Sequence[float], genuine: Sequence[int], impostor: Sequence[int], threshold: float
) -> str:
    """Distances of genuine and impostor pairs (each normalised to its own total)."""
    top_x = bins[-1] + (bins[1] - bins[0] if len(bins) > 1 else 0.05)
    g_total, i_total = max(1, sum(genuine)), max(1, sum(impostor))
    shares = [c / g_total for c in genuine] + [c / i_total for c in impostor]
    top_y = max([1e-9, *shares])
    body: list[str] = []
    width = (_W - _PAD - 10) / len(bins) / 2
    for k, edge in enumerate(bins):
        for j, (counts, total, colour) in enumerate(
            ((genuine, g_total, "#2ca02c"), (impostor, i_total, "#d62728"))
        ):
            y = _y(counts[k] / total, top_y)
            body.append(
                f'<rect x="{_x(edge, top_x) + j * width:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{_H - _PAD - y:.1f}" fill="{colour}" opacity="0.8"/>'
            )
    tx = _x(threshold, top_x)
    body.append(
        f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="10" y2="{_H - _PAD}" '
        'stroke="#000" stroke-dasharray="4"/>'
    )
    body.append(f'<text x="{tx + 3:.1f}" y="22" font-size="10">threshold {threshold}</text>')
    body.append(f'<text x="{_W - 150}" y="36" font-size="10" fill="#2ca02c">genuine pairs</text>')
    body.append(f'<text x="{_W - 150}" y="48" font-size="10" fill="#d62728">impostor pairs</text>')
    return _frame("Distances of genuine and impostor pairs", body, "distance", "share of pairs")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_STYLE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Accuracy audit</title>",
    "<style>body{font-family:sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;"
    "padding:.25rem .5rem;text-align:left}.stale{background:#fee;padding:.5rem}"
    "</style></head><body>",
)


def render_html(report: Mapping[str, Any]) -> str:
    """The report people read: summary, method, limits, legal basis, tables and plots."""
    parts = [
        *_heading(report),
        *_data(report),
        *_verification(report),
        *_identification(report),
        *_detection(report),
        *_advice(report),
        *_closing(report),
    ]
    return "\n".join(parts)


def _heading(report: Mapping[str, Any]) -> list[str]:
    """Title, what was measured with, and the stale warning."""
    parts = [
        *_STYLE,
        f"<h1>Accuracy and bias audit — {_e(report['tenant'])}</h1>",
        f"<p>Dated {_e(report['created_at'])}; "
        f"engine {_e(json.dumps(report['engine_versions'], sort_keys=True))}; "
        f"threshold {_e(report['policy']['match_threshold'])}, "
        f"margin {_e(report['policy']['match_margin'])}; "
        f"target FMR {_e(report['target_fmr'])}.</p>",
    ]
    if report.get("stale"):
        parts.append(
            f"<p class='stale'>Stale: {_e('; '.join(report['stale']))}. Run the audit again.</p>"
        )
    return parts


def _data(report: Mapping[str, Any]) -> list[str]:
    data = report["data"]
    return [
        "<h2>Data</h2>",
        _table(["what", "count"], [(k, str(val)) for k, val in data.items() if k != "groups"]),
        _table(
            ["group", "people"],
            [(f"{a}={val}", str(n)) for a, by in data["groups"].items() for val, n in by.items()],
        ),
    ]


def _verification(report: Mapping[str, Any]) -> list[str]:
    """FMR/FNMR tables and plots per group, the DET curves and the distance histogram."""
    v = report["verification"]
    groups = [("everyone", v["overall"])] + [
        (f"{a}={val}", r) for a, by in v["by_group"].items() for val, r in by.items()
    ]
    return [
        "<h2>Verification</h2>",
        _table(
            ["group", "FMR", "FNMR"], [(n, _rate(r["fmr"]), _rate(r["fnmr"])) for n, r in groups]
        )
        + _table(["across", "FMR"], [(a, _rate(r["fmr"])) for a, r in v["across"].items()]),
        rates_svg("False match rate per group (95 % interval)", [(n, r["fmr"]) for n, r in groups]),
        rates_svg(
            "False non-match rate per group (95 % interval)", [(n, r["fnmr"]) for n, r in groups]
        ),
        det_svg(report["curves"]["det"]),
        histogram_svg(
            report["curves"]["bins"],
            report["curves"]["genuine"],
            report["curves"]["impostor"],
            float(report["policy"]["match_threshold"]),
        ),
    ]


def _identification(report: Mapping[str, Any]) -> list[str]:
    ident = report["identification"]
    id_rows = [("everyone", ident["overall"])] + [
        (f"{a}={val}", r) for a, by in ident["by_group"].items() for val, r in by.items()
    ]
    return [
        "<h2>Identification as the gate decides</h2>",
        _table(
            ["group", "right", "unknown", "wrong", "wrong rate", "miss rate"],
            [
                (
                    n,
                    str(r["right"]),
                    str(r["unknown"]),
                    str(r["wrong"]),
                    _rate(r["wrong_rate"]),
                    _rate(r["miss_rate"]),
                )
                for n, r in id_rows
            ],
        ),
    ]


def _detection(report: Mapping[str, Any]) -> list[str]:
    d = report["detection"]
    return [
        "<h2>Detection</h2>",
        _table(
            ["scope", "found", "miss rate"],
            [("everyone", str(d["miss"]["found"]), _rate(d["miss"]))]
            + [
                (f"{a}={val}", str(r["found"]), _rate(r))
                for a, by in d["by_group"].items()
                for val, r in by.items()
            ]
            + [(f"pose {p}", str(r["found"]), _rate(r)) for p, r in d["by_pose"].items()],
        ),
    ]


def _advice(report: Mapping[str, Any]) -> list[str]:
    """The advised threshold and margin, what is unmeasurable, and the FNMR it costs."""
    advice = report["advice"]
    parts = [
        "<h2>Threshold advice</h2>",
        f"<p>{_e(advice['status'])}"
        + (
            f": threshold {_e(advice['match_threshold'])}, margin {_e(advice['match_margin'])}"
            f"{' (loosens: needs a second administrator)' if advice['loosens'] else ''}."
            if advice["status"] == "ok"
            else "."
        )
        + (
            f" Unmeasurable with this data: {_e(', '.join(advice['unmeasurable']))}."
            if advice["unmeasurable"]
            else ""
        )
        + "</p>",
    ]
    if advice["status"] == "ok":
        parts.append(
            _table(
                ["group", "FNMR at the advice"],
                [(n, _rate(r)) for n, r in advice["fnmr_cost"].items()],
            )
        )
    return parts


def _closing(report: Mapping[str, Any]) -> list[str]:
    """Method, limits, legal basis, and what was deleted when the audit ended."""
    parts = [
        "<h2>Method</h2>",
        f"<p>{_e(report['method'])}</p>",
        "<h2>Limits</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in report["limits"]) + "</ul>",
    ]
    if report.get("legal_basis"):
        parts.append(f"<h2>Legal basis</h2><p>{_e(report['legal_basis'])}</p>")
    if "cleanup" in report:
        c = report["cleanup"]
        parts.append(
            f"<p>Photos dropped: {_e(c['photos_deleted'])}; "
            f"templates deleted: {_e(c['templates_deleted'])}; "
            f"verified: {_e(c['verified'])}.</p>"
        )
    parts.append("</body></html>")
    return parts

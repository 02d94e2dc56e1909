"""Tiny inline-SVG charts for the self-contained HTML report (no JS, no external assets).

Three primitives: a line chart, a bar chart with error bars (handles negative values), and
an HTML table. Every label goes through html.escape; every function returns a string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.01:
        return f"{v:.3g}"
    return f"{v:.2e}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    out, v = [], start
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _empty(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><text x="{width / 2}" y="{height / 2}" text-anchor="middle" '
        f'class="muted">no data yet</text></svg>'
    )


def line_chart(
    x_labels: Sequence[str | int | float],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    y_label: str = "",
    width: int = 640,
    height: int = 260,
) -> str:
    """One polyline per series over shared categorical x positions (None = gap)."""
    vals = [v for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    if not x_labels or not vals:
        return _empty(width, height, title)
    left, right, top, bottom = 56, 130, 24, 40
    pw, ph = width - left - right, height - top - bottom
    ticks = _ticks(min(0.0, min(vals)), max(vals))
    lo, hi = ticks[0], ticks[-1]
    n = len(x_labels)

    def sx(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def sy(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" class="title">{escape(title)}</text>',
    ]
    for t in ticks:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" class="grid"/>')
        parts.append(
            f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" class="tick">{_fmt(t)}</text>'
        )
    step = max(1, n // 8)
    for i in range(0, n, step):
        parts.append(
            f'<text x="{sx(i):.1f}" y="{top + ph + 16}" text-anchor="middle" class="tick">'
            f"{escape(str(x_labels[i]))}</text>"
        )
    if y_label:
        parts.append(
            f'<text transform="translate(12 {top + ph / 2}) rotate(-90)" text-anchor="middle" class="tick">'
            f"{escape(y_label)}</text>"
        )
    for k, (name, ys) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        d, pen = [], "M"
        for i, v in enumerate(ys[:n]):
            if v is None or not math.isfinite(v):
                pen = "M"
                continue
            d.append(f"{pen}{sx(i):.1f},{sy(v):.1f}")
            pen = "L"
        if d:
            parts.append(f'<path d="{" ".join(d)}" fill="none" stroke="{color}" stroke-width="2"/>')
            if n <= 40:  # markers, so points isolated by gaps (None) stay visible
                for seg in d:
                    x, y = seg[1:].split(",")
                    parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{color}"/>')
        ly = top + 14 * k + 8
        parts.append(f'<rect x="{left + pw + 10}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{left + pw + 24}" y="{ly + 1}" class="tick">{escape(name[:18])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    lower: Sequence[float | None] | None = None,
    upper: Sequence[float | None] | None = None,
    title: str = "",
    value_label: str = "",
    width: int = 640,
    bar_height: int = 22,
    percent: bool = False,
) -> str:
    """Horizontal bars from a zero line (negative values go left), optional interval whiskers."""
    height = 40 + bar_height * max(len(labels), 1) + 24
    clean = [v for v in values if v is not None and math.isfinite(v)]
    if not labels or not clean:
        return _empty(width, 120, title)
    ends = list(clean)
    for seq in (lower, upper):
        if seq:
            ends += [v for v in seq if v is not None and math.isfinite(v)]
    lo, hi = min(0.0, *ends), max(0.0, *ends)
    if hi == lo:
        hi = lo + 1.0
    pad = 0.05 * (hi - lo)
    lo, hi = (lo - pad if lo < 0 else lo), hi + pad
    left, right, top = 170, 70, 28
    pw = width - left - right

    def sx(v: float) -> float:
        return left + pw * (v - lo) / (hi - lo)

    def fmt(v: float) -> str:
        return f"{100 * v:+.2f}%" if percent else _fmt(v)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" class="title">{escape(title)}</text>',
    ]
    zero = sx(0.0)
    for i, (label, v) in enumerate(zip(labels, values, strict=False)):
        y = top + i * bar_height
        parts.append(f'<text x="{left - 6}" y="{y + bar_height * 0.65:.1f}" text-anchor="end" class="tick">'
                     f"{escape(str(label)[:28])}</text>")  # fmt: skip
        if v is None or not math.isfinite(v):
            continue
        x0, x1 = sorted((zero, sx(v)))
        color = PALETTE[1] if v < 0 else PALETTE[0]
        h = bar_height * 0.6
        yb = y + bar_height * 0.2
        # a path (not a rect) so every chart's data is in <path d=...>; zero-width bars still draw a tick
        parts.append(
            f'<path d="M{x0:.1f},{yb:.1f}H{max(x1, x0 + 1):.1f}V{yb + h:.1f}H{x0:.1f}Z" fill="{color}"/>'
        )
        lo_i = lower[i] if lower else None
        hi_i = upper[i] if upper else None
        if lo_i is not None and hi_i is not None and math.isfinite(lo_i) and math.isfinite(hi_i):
            ym = yb + h / 2
            parts.append(
                f'<path d="M{sx(lo_i):.1f},{ym:.1f}H{sx(hi_i):.1f}M{sx(lo_i):.1f},{ym - 5:.1f}V{ym + 5:.1f}'
                f'M{sx(hi_i):.1f},{ym - 5:.1f}V{ym + 5:.1f}" stroke="#111827" '
                'stroke-width="1.5" fill="none"/>'
            )
        parts.append(
            f'<text x="{left + pw + 6}" y="{y + bar_height * 0.65:.1f}" class="tick">{fmt(v)}</text>'
        )
    base = top + bar_height * len(labels)
    parts.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top - 4}" y2="{base}" class="axis"/>')
    for t in _ticks(lo, hi, 5):
        if lo <= t <= hi:
            parts.append(
                f'<text x="{sx(t):.1f}" y="{base + 14}" text-anchor="middle" class="tick">{fmt(t)}</text>'
            )
    if value_label:
        parts.append(f'<text x="{left + pw / 2}" y="{height - 2}" text-anchor="middle" class="tick">'
                     f"{escape(value_label)}</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table; floats are formatted compactly, None shows as an en dash."""

    def cell(v: object) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return _fmt(v) if math.isfinite(v) else "–"
        return escape(str(v))

    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

"""Server-side SVG charts: no script and no style attribute, so the strict CSP holds
(colours are SVG presentation attributes, which the CSP does not govern). Numbers are
formatted here; every text is escaped."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from releaseboard.metrics.compute import Week

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 720, 180, 34, 28, 10
GOOD, BAD, GRID, INK = "#2f7d4f", "#c0392b", "#d8dde6", "#5b6472"


def _rect(x: float, y: float, w: float, h: float, fill: str) -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}"/>'


def deployments_per_week(weeks: list[Week], title: str) -> SafeString:
    """Bars: successful production deployments per week; the failed changes among them in red."""
    peak = max([w.deployments for w in weeks] + [1])
    plot_w, plot_h = WIDTH - PAD_LEFT - 6, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(1, len(weeks))
    bar = max(1.0, slot * 0.7)
    base = PAD_TOP + plot_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for tick in sorted({0, peak // 2, peak}):
        y = base - plot_h * tick / peak
        parts.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - 6}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{PAD_LEFT - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end" fill="{INK}">{tick}</text>'
        )
    every = max(1, len(weeks) // 8)
    for i, week in enumerate(weeks):
        x = PAD_LEFT + i * slot + (slot - bar) / 2
        ok = week.deployments - week.failures
        h_ok, h_bad = plot_h * ok / peak, plot_h * week.failures / peak
        label = f"week of {week.start:%Y-%m-%d}: {week.deployments} deployments, {week.failures} failed changes"
        parts.append(f'<g class="week" data-week="{week.start:%Y-%m-%d}"><title>{escape(label)}</title>')
        if ok:
            parts.append(_rect(x, base - h_ok, bar, h_ok, GOOD))
        if week.failures:
            parts.append(_rect(x, base - h_ok - h_bad, bar, h_bad, BAD))
        parts.append("</g>")
        if i % every == 0:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" font-size="10" fill="{INK}">{week.start:%b %d}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers formatted above, texts escaped

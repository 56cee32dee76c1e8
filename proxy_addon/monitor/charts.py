"""Small server-rendered SVG charts for the dashboard and the weekly report: no
JavaScript, no CDN (the school's own filter might block one), readable on a phone."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def bars(title: str, labels: list[str], values: Sequence[float], unit: str = "", width: int = 640,
         height: int = 220, colour: str = "#1d4ed8") -> str:
    """A vertical bar chart; labels along the bottom (every few when crowded)."""
    n = max(1, len(values))
    top = max(values, default=0) or 1
    left, bottom, plot_h = 44, 36, height - 56
    bw = (width - left - 8) / n
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<text x="{left}" y="14" font-size="13" font-weight="600">{escape(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 8}" y2="{height - bottom}" stroke="#888"/>',
             f'<text x="{left - 4}" y="{height - bottom - plot_h + 4}" font-size="10" text-anchor="end">'
             f'{top:,.0f}</text>',
             f'<text x="{left - 4}" y="{height - bottom}" font-size="10" text-anchor="end">0</text>']
    step = max(1, round(n / 10))
    for i, (label, v) in enumerate(zip(labels, values)):
        h = plot_h * v / top
        x = left + i * bw
        parts.append(f'<rect x="{x + 1:.1f}" y="{height - bottom - h:.1f}" width="{max(bw - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}: {v:,.1f}{escape(unit)}</title></rect>')
        if i % step == 0:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - bottom + 14}" font-size="10" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def hbars(title: str, labels: list[str], values: list[float], width: int = 640, colour: str = "#b3261e") -> str:
    """A horizontal bar chart, for rankings."""
    row = 20
    height = 28 + row * max(1, len(values))
    top = max(values, default=0) or 1
    left = 190
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<text x="0" y="14" font-size="13" font-weight="600">{escape(title)}</text>']
    for i, (label, v) in enumerate(zip(labels, values)):
        y = 22 + i * row
        w = (width - left - 50) * v / top
        parts.append(f'<text x="{left - 6}" y="{y + 13}" font-size="11" text-anchor="end">{escape(label[:32])}</text>'
                     f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" fill="{colour}"/>'
                     f'<text x="{left + w + 4:.1f}" y="{y + 13}" font-size="11">{v:,.0f}</text>')
    parts.append("</svg>")
    return "".join(parts)

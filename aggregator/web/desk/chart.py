"""A story's articles per hour as a small server-side SVG bar chart (no script needed).

Hours are Paris time. Long stories get wider buckets so the chart keeps at most
MAX_BARS bars; every bar has a <title> tooltip.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from markupsafe import Markup

PARIS = ZoneInfo("Europe/Paris")
# Three days of hourly bars fit a laptop-width column; longer stories get wider buckets.
MAX_BARS = 72
# Short stories still get this many slots, so one bar does not fill the chart.
MIN_SLOTS = 12
MAX_BAR_WIDTH = 22.0
BUCKET_HOURS = (1, 2, 3, 4, 6, 12, 24, 48, 168)
WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 30, 8, 14, 30


def _bucket_hours(span_hours: float) -> int:
    for hours in BUCKET_HOURS:
        if span_hours / hours < MAX_BARS:
            return hours
    return BUCKET_HOURS[-1]


def articles_per_hour(times: Sequence[datetime]) -> Markup:
    """The SVG markup (safe to embed: every text in it is escaped)."""
    if not times:
        return Markup("")
    local = sorted(t.astimezone(PARIS) for t in times)
    start = local[0].replace(minute=0, second=0, microsecond=0)
    span = (local[-1] - start).total_seconds() / 3600
    step = _bucket_hours(span)
    if step >= 24:
        start = start.replace(hour=0)
    counts = Counter(int((t - start).total_seconds() // (step * 3600)) for t in local)
    n_bars = max(counts) + 1
    peak = max(counts.values())
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(n_bars, MIN_SLOTS)
    bar_w = min(MAX_BAR_WIDTH, max(1.0, slot * 0.8))
    unit = "heure" if step == 1 else f"tranche de {step} h"
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(f"Articles par {unit}")}">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'stroke="#c9ced6"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}" stroke="#eef0f3"/>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h / 2:.1f}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h / 2:.1f}" stroke="#eef0f3"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" class="axis">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" class="axis">0</text>',
    ]
    for i in range(n_bars):
        when = start + timedelta(hours=i * step)
        count = counts.get(i, 0)
        if count:
            h = plot_h * count / peak
            x = LEFT + i * slot + (slot - bar_w) / 2
            tip = f"{when:%d/%m %Hh} : {count} article{'s' if count > 1 else ''}"
            parts.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" rx="1.5" fill="#3b6fd8"><title>{escape(tip)}</title></rect>'
            )
    label_every = max(1, math.ceil(n_bars / 8))
    for i in range(0, n_bars, label_every):
        when = start + timedelta(hours=i * step)
        text = f"{when:%d/%m}" if step >= 24 else f"{when:%Hh}"
        if i == 0 or (step < 24 and when.hour < step):
            text = f"{when:%d/%m %Hh}" if step < 24 else text
        x = LEFT + i * slot + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 10}" text-anchor="middle" class="axis">'
            f"{escape(text)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))

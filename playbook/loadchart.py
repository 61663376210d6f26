"""A load run as a picture: latency (p50, p95), throughput and failures over time, with the
thresholds drawn, as a self-contained SVG (no plotting library).

Input is Locust's stats history (one point per interval: users, current req/s and failures/s,
current p50/p95 over Locust's 10 s window) and the run's threshold outcomes from summary.json.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, PANEL_H, TOP, LEFT, RIGHT, GAP = 880, 170, 46, 64, 150, 46
COLORS = {"p50": "#3b82f6", "p95": "#a855f7", "rps": "#16a34a", "users": "#9ca3af",
          "fail": "#dc2626", "limit": "#f59e0b", "broken": "#dc2626", "knee": "#0f766e"}


@dataclass(frozen=True)
class Point:
    t: float  # seconds since the start of the run
    users: int
    rps: float
    fail_per_s: float
    p50: float  # ms
    p95: float  # ms

    @property
    def fail_pct(self) -> float:
        return 100.0 * self.fail_per_s / self.rps if self.rps > 0 else 0.0


@dataclass(frozen=True)
class Mark:
    """A vertical line with a label (the capacity finder's steps, the knee)."""

    t: float
    label: str
    color: str = "#6b7280"


def points(history: Sequence[dict[str, Any]]) -> list[Point]:
    """Locust's env.stats.history -> points, time relative to the first one."""
    out: list[Point] = []
    t0: float | None = None
    for h in history:
        try:
            t = dt.datetime.fromisoformat(str(h["time"]).replace("Z", "+00:00")).timestamp()
        except (KeyError, ValueError):
            continue
        t0 = t if t0 is None else t0
        out.append(Point(t - t0, int(_v(h, "user_count")), _v(h, "current_rps"),
                         _v(h, "current_fail_per_sec"), _v(h, "response_time_percentile_0.5"),
                         _v(h, "response_time_percentile_0.95")))
    return out


def _v(h: dict[str, Any], key: str) -> float:
    value = h.get(key)
    if isinstance(value, (list, tuple)):
        value = value[-1]
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def svg(pts: Sequence[Point], thresholds: Sequence[dict[str, Any]], title: str,
        marks: Sequence[Mark] = (), x_unit: str = "s") -> str:
    """The three panels; `thresholds` are summary.json's threshold entries. The x axis is
    time (`t` in seconds) or, for the capacity finder, users (x_unit="users")."""
    start = min((p.t for p in pts), default=0.0) if x_unit != "s" else 0.0
    span = (max((p.t for p in pts), default=0.0) - start) or 1.0
    panels = [
        ("latency (ms)", [("p50", "p50", [p.p50 for p in pts]),
                          ("p95", "p95", [p.p95 for p in pts])],
         [t for t in thresholds if t["metric"].startswith("http_req_duration")], 1.0),
        ("throughput (req/s)", [("req/s", "rps", [p.rps for p in pts])] + (
            [("users", "users", [float(p.users) for p in pts])] if x_unit == "s" else []),
         [t for t in thresholds if t["metric"].startswith("http_reqs") and
          t["aggregation"] == "rate"], 1.0),
        ("failures (% of requests)", [("failed", "fail", [p.fail_pct for p in pts])],
         [t for t in thresholds if t["metric"].startswith("http_req_failed")], 100.0),
    ]
    shown = {id(t) for _, _, limits, _ in panels for t in limits}
    others = [t for t in thresholds if id(t) not in shown]  # checks, counts: no series here
    height = TOP + len(panels) * (PANEL_H + GAP) + (18 if others else 0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{_e(title)}</text>']
    plot_w = WIDTH - LEFT - RIGHT
    for i, (name, series, limits, scale) in enumerate(panels):
        y0 = TOP + i * (PANEL_H + GAP)
        values = [v for _, _, vs in series for v in vs]
        top = max(values, default=0.0)
        drawn = []
        for t in limits:  # a limit within 3x of the data is drawn; farther ones are listed
            limit = float(t["limit"]) * scale
            if limit <= max(top, 1e-9) * 3 or top == 0:
                top = max(top, limit)
                drawn.append((t, limit))
        top = _nice(top * 1.15 or 1.0)

        def x(t: float) -> float:
            return LEFT + plot_w * (t - start) / span

        def y(v: float, _y0: int = y0, _top: float = top) -> float:
            return _y0 + PANEL_H - PANEL_H * min(v, _top) / _top

        out.append(f'<text x="{LEFT}" y="{y0 - 8}" font-weight="bold">{_e(name)}</text>')
        out.append(f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_H}" '
                   'fill="#f9fafb" stroke="#d1d5db"/>')
        for k in range(5):
            v = top * k / 4
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" '
                       f'y2="{y(v):.1f}" stroke="#e5e7eb"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
                       f'{_num(v)}</text>')
        for k in range(6):
            t = start + span * k / 5
            tick = f"{t:.1f}" if span < 10 and x_unit == "s" else f"{t:.0f}"
            out.append(f'<text x="{x(t):.1f}" y="{y0 + PANEL_H + 14}" text-anchor="middle">'
                       f'{tick} {x_unit}</text>')
        for m in marks:
            out.append(f'<line x1="{x(m.t):.1f}" x2="{x(m.t):.1f}" y1="{y0}" '
                       f'y2="{y0 + PANEL_H}" stroke="{m.color}" stroke-dasharray="2,3"/>')
            if i == 0:
                right = x(m.t) > LEFT + plot_w * 0.8
                out.append(f'<text x="{x(m.t) + (-3 if right else 3):.1f}" y="{y0 + 11}" '
                           f'fill="{m.color}" text-anchor="{"end" if right else "start"}">'
                           f'{_e(m.label)}</text>')
        legend_y = y0 + 12
        for label, key, vs in series:
            if len(vs) == 1:
                out.append(f'<circle cx="{x(pts[0].t):.1f}" cy="{y(vs[0]):.1f}" r="3" '
                           f'fill="{COLORS[key]}"/>')
            elif vs:
                path = " ".join(f"{x(p.t):.1f},{y(v):.1f}" for p, v in zip(pts, vs, strict=True))
                dash = ' stroke-dasharray="4,2"' if key == "users" else ""
                out.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[key]}" '
                           f'stroke-width="1.8"{dash}/>')
                if x_unit != "s":  # the capacity finder's steps: each one a dot
                    out.extend(f'<circle cx="{x(p.t):.1f}" cy="{y(v):.1f}" r="3" '
                               f'fill="{COLORS[key]}"/>' for p, v in zip(pts, vs, strict=True))
            out.append(f'<rect x="{LEFT + plot_w + 10}" y="{legend_y - 8}" width="10" '
                       f'height="3" fill="{COLORS[key]}"/>')
            out.append(f'<text x="{LEFT + plot_w + 24}" y="{legend_y - 4}">{_e(label)}</text>')
            legend_y += 14
        for t, limit in drawn:
            color = COLORS["limit"] if t.get("passed") else COLORS["broken"]
            label = f"{t['metric'].split('{')[1][5:-1] + ' ' if '{' in t['metric'] else ''}" \
                    f"{t['threshold']}"
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(limit):.1f}" '
                       f'y2="{y(limit):.1f}" stroke="{color}" stroke-width="1.5" '
                       'stroke-dasharray="6,3"/>')
            out.append(f'<text x="{LEFT + plot_w + 10}" y="{y(limit) + 4:.1f}" '
                       f'fill="{color}">{_e(label)}</text>')
        for t in limits:
            if all(t is not d for d, _ in drawn):
                out.append(f'<text x="{LEFT + plot_w + 10}" y="{legend_y}" fill="#6b7280">'
                           f'{_e(t["threshold"])} (off scale)</text>')
                legend_y += 14
    if others:
        listed = "; ".join(f"{t['metric']} {t['threshold']} "
                           f"{'passed' if t.get('passed') else 'FAILED'}" for t in others)
        out.append(f'<text x="{LEFT}" y="{height - 12}">also judged: {_e(listed)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def capacity_points(steps: Sequence[dict[str, Any]]) -> list[Point]:
    """The capacity finder's steps as points over users (t = users)."""
    return [Point(float(s["users"]), int(s["users"]), float(s["rps"]),
                  float(s["rps"]) * float(s["failure_rate"] or 0), float(s["p50_ms"] or 0),
                  float(s["p95_ms"] or 0)) for s in steps]


def _nice(v: float) -> float:
    """The next round number at or above v (1, 2, 2.5, 5 x 10^n)."""
    import math

    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == 0 else f"{v:.2g}"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)

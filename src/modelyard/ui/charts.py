"""Chart data: aligned series for the line charts (drawn by uPlot in the page) and the
geometry of the small scatter and bar charts drawn on the server as SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HEAT_LEVELS = 10


def line_chart(
    title: str, x_label: str, y_label: str, series: list[tuple[str, list[tuple[int, Any]]]]
) -> dict[str, Any]:
    """Return a line chart as uPlot wants it: one shared x axis and a column per series.

    `series` holds (label, [(x, y), ...]); x values missing from a series become null, so
    curves of runs evaluated at different steps overlay on one axis.
    """
    xs = sorted({x for _, points in series for x, _ in points})
    at = {x: i for i, x in enumerate(xs)}
    columns: list[list[Any]] = [xs]
    for _, points in series:
        column: list[Any] = [None] * len(xs)
        for x, y in points:
            column[at[x]] = y if isinstance(y, int | float) and math.isfinite(y) else None
        columns.append(column)
    return {
        "title": title,
        "x_label": x_label,
        "y_label": y_label,
        "labels": [label for label, _ in series],
        "data": columns,
    }


def heat_level(value: float, top: float) -> int:
    """Return the shade (0..HEAT_LEVELS-1) of `value` on a scale whose darkest is `top`."""
    if top <= 0 or value <= 0:
        return 0
    return min(HEAT_LEVELS - 1, math.ceil(value / top * (HEAT_LEVELS - 1)))


def confusion_cells(matrix: list[list[int]]) -> list[list[tuple[int, int]]]:
    """Return each confusion-matrix cell as (count, shade), shaded by its share of the row."""
    rows = []
    for row in matrix:
        total = sum(row)
        rows.append([(n, heat_level(n / total if total else 0.0, 1.0)) for n in row])
    return rows


@dataclass(frozen=True)
class Axis:
    """A linear axis mapping data values onto a pixel range, with round tick values."""

    lo: float
    hi: float
    start: float
    end: float

    def at(self, value: float) -> float:
        """Return the pixel position of `value`."""
        span = self.hi - self.lo or 1.0
        return round(self.start + (value - self.lo) / span * (self.end - self.start), 1)

    def ticks(self, count: int = 5) -> list[tuple[float, str]]:
        """Return about `count` (pixel, label) ticks at round values."""
        step = _nice_step((self.hi - self.lo) / max(count, 1))
        first = math.ceil(self.lo / step) * step
        out = []
        value = first
        while value <= self.hi + step * 1e-9:
            out.append((self.at(value), _fmt(value, step)))
            value += step
        return out


def _nice_step(raw: float) -> float:
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _fmt(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f}"


def axis(values: list[float], start: float, end: float, pad: float = 0.05) -> Axis:
    """Return an axis covering `values` with a margin of `pad` of their range on each side."""
    lo, hi = min(values), max(values)
    margin = (hi - lo) * pad or abs(hi) * pad or 1.0
    return Axis(lo - margin, hi + margin, start, end)


WIDTH, HEIGHT = 520, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 48


def scatter(
    points: list[dict[str, Any]], x_key: str, y_key: str, x_label: str, y_label: str
) -> dict[str, Any]:
    """Return the SVG geometry of a scatter chart of `points` (dicts with the two keys,
    `name`, `href` and `pareto`): pixel positions, ticks and axis labels."""
    usable = [p for p in points if _number(p.get(x_key)) and _number(p.get(y_key))]
    if not usable:
        return {"points": []}
    xa = axis([float(p[x_key]) for p in usable], LEFT, WIDTH - RIGHT)
    ya = axis([float(p[y_key]) for p in usable], HEIGHT - BOTTOM, TOP)
    placed = [
        {**p, "cx": xa.at(float(p[x_key])), "cy": ya.at(float(p[y_key]))}
        for p in sorted(usable, key=lambda p: float(p[x_key]))
    ]
    _place_labels(placed, (LEFT + WIDTH - RIGHT) / 2)
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "bottom": HEIGHT - BOTTOM,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "x_ticks": xa.ticks(),
        "y_ticks": ya.ticks(),
        "x_label": x_label,
        "y_label": y_label,
        "points": placed,
        "front": [(p["cx"], p["cy"]) for p in placed if p.get("pareto")],
    }


def _place_labels(points: list[dict[str, Any]], middle: float) -> None:
    """Set each point's label position: beside it, toward the middle, stacked below the
    labels of points drawn at (nearly) the same place so that none overlaps."""
    taken: list[tuple[float, float]] = []
    for p in points:
        right = p["cx"] < middle
        x, y = p["cx"] + (10 if right else -10), p["cy"] - 9
        while any(abs(x - tx) < 60 and abs(y - ty) < 13 for tx, ty in taken):
            y += 14
        taken.append((x, y))
        p.update(lx=round(x, 1), ly=round(y, 1), anchor="start" if right else "end")


def reliability(bins: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the SVG geometry of a reliability diagram: per bin, a bar up to its accuracy
    centred on its mean confidence, and the diagonal of perfect calibration."""
    xa, ya = Axis(0, 1, LEFT, WIDTH - RIGHT), Axis(0, 1, HEIGHT - BOTTOM, TOP)
    bars = []
    for b in bins:
        left, right = xa.at(float(b["lo"])), xa.at(float(b["hi"]))
        top = ya.at(float(b["accuracy"]))
        bars.append({**b, "x": left + 1, "w": max(right - left - 2, 1), "y": top,
                     "h": round(ya.at(0) - top, 1), "mx": xa.at(float(b["confidence"]))})  # fmt: skip
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "bottom": HEIGHT - BOTTOM,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "x_ticks": xa.ticks(),
        "y_ticks": ya.ticks(),
        "bars": bars,
        "diagonal": (xa.at(0), ya.at(0), xa.at(1), ya.at(1)),
    }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def attribution_level(score: float, top: float) -> int:
    """Return the signed shade (-5..5) of a word's attribution relative to the largest |score|."""
    if top <= 0:
        return 0
    level = math.ceil(abs(score) / top * 5)
    return int(math.copysign(min(level, 5), score)) if level else 0

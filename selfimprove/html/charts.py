"""Charts of the HTML reports: Vega-Lite specs rendered to static SVG by `vl-convert-python`.

Owns the few chart shapes the pages use (horizontal bars, paired bars, lines over time or versions,
event points) and their rendering. vl-convert runs the Vega-Lite compiler and Vega's SVG renderer in
an embedded JavaScript engine inside the Python wheel, so a page carries finished SVG: no script, no
CDN, nothing to load when the file is opened; Vega escapes every label it draws.

Never does: read results or decide what to show (the pages choose the rows), or load anything from
the network. Each `Chart` records how many marks (bars, points) it drew, so tests can count them in
the browser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from selfimprove.errors import SelfImproveError

WIDTH = 560
LABEL_LIMIT = 260  # pixels of an axis label before Vega cuts it with an ellipsis
COLORS = {"base": "#9aa5b1", "candidate": "#2f6fdf", "merge": "#1a7f37", "rollback": "#cf222e",
          "proposal": "#8250df", "failure": "#cf222e", "prior": "#9aa5b1", "learned": "#2f6fdf"}
# the first series (the overall rate) in near-black, then Vega's category colours
SERIES = ["#1f2328", "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
          "#9d755d", "#bab0ac"]
_CONFIG = {"font": "DejaVu Sans, Verdana, sans-serif", "view": {"stroke": None},
           "axis": {"labelFontSize": 11, "titleFontSize": 11, "labelLimit": LABEL_LIMIT},
           "legend": {"labelFontSize": 11, "titleFontSize": 11, "labelLimit": LABEL_LIMIT}}


@dataclass(frozen=True)
class Chart:
    name: str  # the figure's data-chart attribute
    svg: Markup
    marks: int  # the bars or points drawn: what a test expects to find in the page


def _colors(names: Sequence[str]) -> list[str]:
    return [COLORS.get(name, "#888") for name in names]


def render(spec: Mapping[str, Any]) -> Markup:
    """The SVG of a Vega-Lite spec (inline in the page)."""
    try:
        import vl_convert
    except ImportError as exc:
        raise SelfImproveError("HTML reports need the vl-convert-python package",
                               hint="pip install 'selfimprove[html]'") from exc
    full = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "config": _CONFIG, **spec}
    svg: str = vl_convert.vegalite_to_svg(full)
    # vl-convert writes a bare <svg> document; width/height stay so the page keeps its layout
    return Markup(svg)


def bars(name: str, rows: Sequence[Mapping[str, Any]], *, label: str, value: str, title: str,
         percent: bool = True, color: str | None = None) -> Chart:
    """Horizontal bars, one per row, in the rows' order; `color` names a field that colours them."""
    order = [row[label] for row in rows]
    spec: dict[str, Any] = {
        "width": WIDTH - LABEL_LIMIT, "height": {"step": 22},
        "data": {"values": [dict(r) for r in rows]},
        "layer": [
            {"mark": {"type": "bar", "color": COLORS["failure"]},
             "encoding": {"y": {"field": label, "type": "nominal", "sort": order, "title": None},
                          "x": {"field": value, "type": "quantitative", "title": title,
                                "axis": {"format": ".0%" if percent else "~g"}}}},
            {"mark": {"type": "text", "align": "left", "dx": 3, "fontSize": 10},
             "encoding": {"y": {"field": label, "type": "nominal", "sort": order},
                          "x": {"field": value, "type": "quantitative"},
                          "text": {"field": value, "format": ".1%" if percent else "~g"}}},
        ],
    }
    if color is not None:
        spec["layer"][0]["encoding"]["color"] = {"field": color, "type": "nominal", "title": None,
                                                 "legend": {"orient": "bottom"}}
    return Chart(name, render(spec), len(rows))


def paired_bars(name: str, rows: Sequence[Mapping[str, Any]], *, group: str, side: str, value: str,
                sides: Sequence[str], title: str) -> Chart:
    """Bars in pairs (one per side) for each group: base vs candidate per slice."""
    order = list(dict.fromkeys(row[group] for row in rows))
    spec = {
        "width": WIDTH - LABEL_LIMIT, "height": {"step": 14},
        "data": {"values": [dict(r) for r in rows]},
        "mark": "bar",
        "encoding": {
            "y": {"field": group, "type": "nominal", "sort": order, "title": None},
            "yOffset": {"field": side, "type": "nominal", "sort": list(sides)},
            "x": {"field": value, "type": "quantitative", "title": title, "scale": {"domain": [0, 1]},
                  "axis": {"format": ".0%"}},
            "color": {"field": side, "type": "nominal", "title": None, "sort": list(sides),
                      "scale": {"domain": list(sides), "range": _colors(sides)},
                      "legend": {"orient": "bottom"}},
        },
    }
    return Chart(name, render(spec), len(rows))


def lines(name: str, rows: Sequence[Mapping[str, Any]], *, x: str, y: str, series: str, title: str,
          temporal: bool, x_order: Sequence[str] = (), marks: Sequence[Mapping[str, Any]] = ()) -> Chart:
    """A line with points per series; `x` is a time (temporal) or an ordered label. `marks` are
    vertical rules at x positions, each with a `kind` (merge, rollback) colouring it."""
    x_enc: dict[str, Any] = {"field": x, "type": "temporal", "title": None}
    if not temporal:  # every version on the axis, in order, even those without traces
        x_enc = {"field": x, "type": "ordinal", "scale": {"domain": list(x_order)}, "title": None,
                 "axis": {"labelAngle": 0, "labelLimit": 120}}
    names = list(dict.fromkeys(r[series] for r in rows))
    layers: list[dict[str, Any]] = [{
        "mark": {"type": "line", "point": True},
        "encoding": {"x": x_enc,
                     "y": {"field": y, "type": "quantitative", "title": title, "axis": {"format": ".0%"}},
                     "color": {"field": series, "type": "nominal", "title": None, "sort": names,
                               "scale": {"domain": names, "range": SERIES[:len(names)]},
                               "legend": {"orient": "bottom", "columns": 2}}},
    }]
    if marks:
        kinds = sorted({m["kind"] for m in marks})
        layers.append({
            "data": {"values": [dict(m) for m in marks]},
            "mark": {"type": "rule", "strokeDash": [4, 3], "strokeWidth": 2},
            "encoding": {"x": {**x_enc, "field": "x"},
                         "stroke": {"field": "kind", "type": "nominal", "title": None,
                                    "scale": {"domain": kinds, "range": _colors(kinds)},
                                    "legend": {"orient": "top"}}},
        })
    spec = {"width": WIDTH, "height": 220, "data": {"values": [dict(r) for r in rows]}, "layer": layers,
            "resolve": {"scale": {"color": "independent"}}}
    return Chart(name, render(spec), len(rows))


def events(name: str, rows: Sequence[Mapping[str, Any]]) -> Chart:
    """One point per event on a time axis, a row per kind of event (proposal, merge, rollback)."""
    kinds = list(dict.fromkeys(r["event"] for r in rows))
    spec = {
        "width": WIDTH, "height": {"step": 28},
        "data": {"values": [dict(r) for r in rows]},
        "mark": {"type": "point", "filled": True, "size": 90, "opacity": 0.85},
        "encoding": {
            "x": {"field": "at", "type": "temporal", "title": None},
            "y": {"field": "event", "type": "nominal", "title": None, "sort": kinds},
            "color": {"field": "event", "type": "nominal", "legend": None,
                      "scale": {"domain": kinds, "range": _colors(kinds)}},
        },
    }
    return Chart(name, render(spec), len(rows))

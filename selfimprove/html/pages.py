"""The three pages: each takes the documents that `--json` prints and returns one HTML string.

`analyze_page` takes the analysis JSON, the outcome lines (`--outcomes`) and `Samples` (start times
and a few conversations); `eval_page` takes the eval JSON and the prompt diff; `history_page` takes
the history JSON. Every text reaches the page through Jinja2 with autoescaping on and through
`redact.redact` (the environment's `finalize`), so a trace can neither inject markup nor leak a secret;
charts are SVG drawn by Vega, which escapes its labels too. A Content-Security-Policy allows no
script at all: the page needs none (sections expand with <details>).

Never does: read files, run git or analysis; bounded output: evidence is sampled (a few example
conversations per pattern, the first trace ids), whatever the number of traces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from markupsafe import Markup

from selfimprove import __version__
from selfimprove.html import charts
from selfimprove.html.samples import Samples, timeline, window

MAX_PATTERNS_CHARTED = 20  # bars; the rest are summed as "other patterns"
MAX_PATTERNS_SHOWN = 50  # detailed sections
MAX_IDS = 20  # trace ids listed per pattern
TIMELINE_SERIES = 5  # patterns drawn over time beside the overall rate
PAGES = {"analyze": "analyze.html", "eval": "eval.html", "history": "history.html"}


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import Environment, PackageLoader

    env = Environment(loader=PackageLoader("selfimprove.html", "templates"), autoescape=True,
                      finalize=_finalize, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["short"] = lambda sha: (sha or "")[:7]
    env.filters["ref"] = lambda ref: ref[:7] if re.fullmatch(r"[0-9a-f]{40}", ref or "") else ref
    return env


def _finalize(value: Any) -> Any:
    """Every printed value: None as a dash, strings redacted (markup made here is left alone)."""
    if value is None:
        return "–"
    if isinstance(value, str) and not isinstance(value, Markup):
        from selfimprove.redact import redact

        return redact(value)
    return value


def _pct(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value):.{digits}%}"


def _num(value: Any) -> str:
    return "–" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _render(template: str, page: str, links: Mapping[str, str] | None, **context: Any) -> str:
    return str(_env().get_template(template).render(
        page=page, links=links or {}, version=__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), **context))


def _label(index: int, title: str, limit: int = 48) -> str:
    from selfimprove.redact import redact

    text = redact(" ".join(str(title).split()))
    return f"#{index} " + (text if len(text) <= limit else text[:limit - 1] + "…")


# --- analyze ---------------------------------------------------------------------------------------

def analyze_page(doc: Mapping[str, Any], outcomes: Iterable[Mapping[str, Any]],
                 samples: Samples | None = None, *, links: Mapping[str, str] | None = None) -> str:
    """The analyze report: failure rates, patterns over time, evidence with example conversations, fit."""
    samples = samples or Samples()
    counts = doc["traces"]
    decided = counts["failure"] + counts["success"]
    patterns = list(doc.get("patterns", []))
    wanted = {ex.get("source") for p in patterns[:MAX_PATTERNS_SHOWN] for ex in p.get("examples", [])}
    blamed: dict[str, Mapping[str, Any]] = {}
    dated: list[Mapping[str, Any]] = []
    for o in outcomes:
        if o.get("source") in wanted and o.get("blame"):
            blamed[str(o["source"])] = o["blame"]
        if samples.started:
            dated.append({key: o.get(key) for key in ("source", "outcome", "pattern")})
    labels = {p["id"]: _label(i, p["title"]) for i, p in enumerate(patterns, 1)}
    figures = []
    if decided:
        figures.append(_rate_chart(patterns, counts["failure"], decided, labels))
    unit, rows = timeline(dated, samples.started, [p["id"] for p in patterns[:TIMELINE_SERIES]])
    if rows:
        for row in rows:
            row["series"] = labels.get(row["series"], row["series"])
        figures.append(charts.lines("over-time", rows, x="t", y="rate", series="series", temporal=True,
                                    title=f"failure rate per {unit}"))
    fit = doc.get("fit") or {}
    auroc = [{"what": what, "auroc": fit.get(key)} for what, key in
             (("prior", "auroc_prior"), ("prior (cross-validated)", "auroc_prior_cv"),
              ("learned (cross-validated)", "auroc_learned_cv")) if fit.get(key) is not None]
    fit_chart = (charts.bars("fit", auroc, label="what", value="auroc", title="AUROC on labelled traces",
                             percent=False) if auroc else None)
    shown = []
    for i, p in enumerate(patterns[:MAX_PATTERNS_SHOWN], 1):
        examples = []
        for ex in p.get("examples", []):
            blame = blamed.get(ex.get("source"))
            messages = samples.conversations.get(ex.get("source"), [])
            examples.append({**ex, "blame": blame,
                             "messages": window(messages, blame.get("step") if blame else None)})
        shown.append({**p, "index": i, "examples": examples, "ids": p.get("trace_ids", [])[:MAX_IDS],
                      "more_ids": max(0, len(p.get("trace_ids", [])) - MAX_IDS)})
    return _render("analyze.html.j2", "analyze", links, doc=doc, counts=counts, decided=decided,
                   failure_rate=counts["failure"] / decided if decided else None, figures=figures,
                   patterns=shown, more_patterns=max(0, len(patterns) - MAX_PATTERNS_SHOWN), fit=fit,
                   fit_chart=fit_chart, sources=doc.get("sources", []), versions=doc.get("versions", []),
                   dated=bool(rows))


def _rate_chart(patterns: Sequence[Mapping[str, Any]], failures: int, decided: int,
                labels: Mapping[str, str]) -> charts.Chart:
    rows = [{"what": "all failures", "rate": failures / decided, "kind": "overall"}]
    rows += [{"what": labels[p["id"]], "rate": p["count"] / decided, "kind": p["kind"]}
             for p in patterns[:MAX_PATTERNS_CHARTED]]
    rest = sum(p["count"] for p in patterns[MAX_PATTERNS_CHARTED:])
    if rest:
        rows.append({"what": f"{len(patterns) - MAX_PATTERNS_CHARTED} other patterns", "rate": rest / decided,
                     "kind": "other"})
    return charts.bars("failure-rate", rows, label="what", value="rate", color="kind",
                       title="share of decided traces that failed")


# --- eval ------------------------------------------------------------------------------------------

def eval_page(doc: Mapping[str, Any] | None, diff: str = "", *, links: Mapping[str, str] | None = None,
              note: str | None = None) -> str:
    """The eval report: the verdict, paired bars per slice, flipped cases side by side, the diff.
    `doc` None makes a page that says why there is no eval (`note`)."""
    if doc is None:
        return _render("eval.html.j2", "eval", links, doc=None, note=note, figures=[], diff=[])
    rows = []
    for side in ("base", "candidate"):
        rate = doc[side].get("pass_rate")
        if rate is not None:
            rows.append({"slice": "all cases", "side": side, "rate": rate})
    for tag, s in doc.get("slices", {}).items():
        for side in ("base", "candidate"):
            if s.get(side) is not None:
                rows.append({"slice": f"{tag} ({s.get('cases')})", "side": side, "rate": s[side]})
    figures = [charts.paired_bars("slices", rows, group="slice", side="side", value="rate",
                                  sides=("base", "candidate"), title="pass rate")] if rows else []
    return _render("eval.html.j2", "eval", links, doc=doc, note=note, figures=figures, diff=diff_lines(diff))


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """(css class, line) of a unified diff."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff ", "index ")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


# --- history ---------------------------------------------------------------------------------------

def history_page(doc: Mapping[str, Any], *, links: Mapping[str, str] | None = None) -> str:
    """The history report: events on a timeline, failure rate per pattern per prompt version with
    merges and rollbacks marked, process metrics."""
    figures = []
    events = [{"at": e["at"], "event": e["event"]} for e in doc.get("events", []) if e.get("at")]
    if events:
        figures.append(charts.events("events", events))
    production = doc.get("production") or {}
    versions = list(production.get("versions", []))
    if any(v.get("traces") for v in versions):
        kinds = {c.get("commit"): "rollback" if c.get("kind") == "rollback" else "merge"
                 for c in production.get("changes", [])}
        totals: dict[str, int] = {}
        for v in versions:
            for pid, cell in v.get("patterns", {}).items():
                totals[pid] = totals.get(pid, 0) + cell.get("count", 0)
        top = sorted(totals, key=lambda k: -totals[k])[:TIMELINE_SERIES]
        order = [_version_label(v, kinds) for v in versions]
        rows = []
        for v, x in zip(versions, order, strict=True):
            if not v.get("traces"):
                continue
            rows.append({"version": x, "series": "all failures", "rate": v.get("failure_rate")})
            cells = v.get("patterns", {})
            rows += [{"version": x, "series": pid, "rate": cells.get(pid, {}).get("rate", 0.0)}
                     for pid in top]
        marks = [{"x": x, "kind": kinds.get(v["commit"], "merge")}
                 for v, x in zip(versions, order, strict=True) if v.get("commit")]
        figures.append(charts.lines("versions", [r for r in rows if r["rate"] is not None], x="version",
                                    y="rate", series="series", temporal=False, x_order=order,
                                    marks=marks, title="failure rate"))
    return _render("history.html.j2", "history", links, doc=doc, figures=figures, production=production)


def _version_label(v: Mapping[str, Any], kinds: Mapping[str | None, str]) -> str:
    commit = v.get("commit")
    return f"v{v['version']}" + (f" {kinds.get(commit, 'merge')} {commit[:7]}" if commit else "")

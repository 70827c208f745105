"""An analysis for people: the terminal report and the Markdown report.

Owns `render` (rich, to stdout: "the top reasons the agent fails, with numbers", the fit, the judge,
failure rate by prompt version) and `markdown` / `write_markdown` (the weekly report, DESIGN §5).

Never does: decide or compute anything the analysis did not (it only shows an `Analysis`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfimprove.analysis.signals import excerpt
from selfimprove.files import write_atomic

if TYPE_CHECKING:
    from rich.console import Console

    from selfimprove.analysis.outcomes import Fit
    from selfimprove.analysis.records import Analysis, Pattern

TOP = 10
NAMED_SKIPS = 3  # bad records named in the default report; -v names every one kept


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def render(analysis: Analysis, console: Console, *, verbose: bool = False) -> None:
    """The terminal report: the top reasons the agent fails, with numbers."""
    from rich.table import Table
    from rich.text import Text

    c = analysis.counts
    decided = c["failure"] + c["success"]
    rate = f" ({_pct(c['failure'] / decided)} of decided)" if decided else ""
    skipped = f"{c['skipped']} bad record{'' if c['skipped'] == 1 else 's'} skipped"
    console.print(Text(f"{c['total']} traces: {c['failure']} failed{rate}, {c['success']} succeeded, "
                       f"{c['unknown']} unknown; {skipped}", style="bold"), soft_wrap=True)
    if analysis.filtered:
        console.print(f"{analysis.filtered} traces outside --since/--until left out")
    if analysis.duplicates:
        console.print(_duplicates_line(analysis.duplicates))
    named = 0
    for s in analysis.sources:
        if verbose:
            state = f"{s.status}: {s.reason}" if s.reason else s.status
            line = f"  {s.path}: {s.format or '-'}, {s.traces} traces, {s.skipped} skipped ({state})"
            console.print(Text(line), soft_wrap=True)
        problems = s.errors or ([(None, s.reason or "unreadable")] if s.status == "skipped" else [])
        for line_no, reason in problems[: None if verbose else max(0, NAMED_SKIPS - named)]:
            where = f"{s.path}:{line_no}" if line_no is not None else s.path
            console.print(Text(f"  skipped {where}: {reason}", style="yellow"), soft_wrap=True)
            named += 1
    if not verbose and c["skipped"] > named:
        console.print(Text(f"  … and {c['skipped'] - named} more: -v names them, as does --json "
                           "(sources[].errors)", style="yellow"), soft_wrap=True)
    if analysis.patterns:
        table = Table(title="Top reasons the agent fails", title_justify="left", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("id", no_wrap=True)
        table.add_column("pattern")
        table.add_column("kind")
        table.add_column("traces", justify="right")
        table.add_column("share", justify="right")
        for n, p in enumerate(analysis.patterns[:TOP], 1):
            title = p.notes.get("name") or p.title
            table.add_row(str(n), p.id, excerpt(str(title), 60), p.kind, str(p.count), _pct(p.share))
        console.print(table)
        if len(analysis.patterns) > TOP:
            rest = sum(p.count for p in analysis.patterns[TOP:])
            console.print(f"… and {len(analysis.patterns) - TOP} more patterns covering {rest} failures")
        for n, p in enumerate(analysis.patterns[: 3 if not verbose else TOP], 1):
            console.print(Text(f"{n}. {p.title}  [{p.id}]", style="bold"), soft_wrap=True)
            for line in _pattern_lines(p):
                console.print(Text(f"   {line}"), soft_wrap=True)
    elif c["failure"]:
        console.print("no failure pattern stands out")
    fit = analysis.fit
    console.print(Text(_fit_line(fit)), soft_wrap=True)
    if analysis.judge is not None:
        for line in judge_lines(analysis.judge):
            console.print(Text(line), soft_wrap=True)
    if analysis.versions:
        table = Table(title="Failure rate by prompt version", title_justify="left")
        for col in ("version", "traces", "failures", "rate"):
            table.add_column(col, justify="left" if col == "version" else "right")
        for v in analysis.versions:
            rate_v = v["failure_rate"]
            table.add_row(str(v["prompt_version"]), str(v["traces"]), str(v["failure"]),
                          "–" if rate_v is None else _pct(rate_v))
        console.print(table)
    if analysis.reflection is not None:
        r = analysis.reflection
        console.print(f"reflection by {r.get('model')}: {r.get('calls')} call(s), "
                      f"${float(r.get('cost_usd') or 0):.4f}")


def judge_lines(j: Mapping[str, Any]) -> list[str]:
    """What the LLM judge labelled, how far it agrees with the explicit labels, and what it cost."""
    v = j["verdicts"]
    lines = [f"judge {j['model']}: {j['judged']} traces judged ({v['failure']} failed, {v['success']} "
             f"succeeded, {v['unknown']} unknown); {j['labels_used']} of its labels used for the weights"]
    a = j["agreement"]
    if a["compared"]:
        lines.append(f"judge agrees with the explicit labels on {a['agreed']} of {a['compared']} traces "
                     f"({_pct(a['rate'])})")
    lines.append(f"judge calls: {j['calls']} made, {j['cached']} cached · tokens: {j['input_tokens']} in, "
                 f"{j['output_tokens']} out · cost: ${float(j['cost_usd']):.4f}")
    if j.get("stopped"):
        lines.append(f"judge stopped: {j['stopped']}")
    elif j.get("errors"):
        lines.append(f"judge: {j['errors']} call(s) failed (verdict unknown); first: {j['first_error']}")
    return lines


def _duplicates_line(n: int) -> str:
    return f"{n} duplicate{'s' if n != 1 else ''} merged (the same trace read more than once is counted once)"


def _fit_line(fit: Fit) -> str:
    # say plainly when the weights were not fitted to this agent's labels
    parts = ["signal weights: learned" if fit.method == "learned" else
             "signal weights: uncalibrated prior (not fitted to this agent's labels)"]
    if fit.auroc_prior is not None:
        parts.append(f"prior AUROC {fit.auroc_prior:.2f} on {fit.labelled} labelled traces")
    if fit.auroc_learned is not None:
        parts.append(f"learned AUROC {fit.auroc_learned:.2f} against {fit.auroc_prior_cv or 0:.2f} for the "
                     f"prior ({fit.cv} cross-validation)")
        if fit.model.context:
            parts.append(f"{len(fit.model.context)} context features weighed (tools, last action, failing "
                         "tools, last speaker)")
    if fit.labelled == 0:
        parts.append("no labelled traces, so unlabelled outcomes rest on prior weights")
    return "; ".join(parts)


def _pattern_lines(p: Pattern) -> list[str]:
    ev = p.evidence
    lines = []
    signals = ", ".join(f"{k} {v}" for k, v in sorted(ev.signals.items(), key=lambda kv: -kv[1]))
    lines.append(f"{p.count} traces, {_pct(p.share)} of failures; signals: {signals}")
    if p.notes.get("root_cause"):
        lines.append(f"root cause (model): {p.notes['root_cause']}")
    if p.notes.get("suggested_fix"):
        lines.append(f"suggested fix (model): {p.notes['suggested_fix']}")
    label = "error" if p.kind in ("tool_error", "run_error") else "seen"
    for sample in ev.error_samples[:2]:
        lines.append(f"{label}: {excerpt(sample, 110)}")
    for phrase in ev.user_phrases[:2]:
        lines.append(f"user: {excerpt(phrase, 110)}")
    if ev.config_hint:
        lines.append(f"config knob: {ev.config_hint}")
    if ev.consequences:
        lines.append("then: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in ev.consequences.items()))
    if any(agent.lower() not in ("assistant", "user") for agent in ev.blame):  # a multi-agent log: say who
        agents = ", ".join(f"{k} ({v} of {p.count})" for k, v in ev.blame.items())
        lines.append(f"responsible agent: {agents}")
    if p.examples:
        lines.append("e.g. " + ", ".join(e.trace_id for e in p.examples))
    return lines


# --- markdown ----------------------------------------------------------------------------------------

def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(analysis: Analysis) -> str:
    c = analysis.counts
    decided = c["failure"] + c["success"]
    out = ["# Why the agent fails", ""]
    rate = f" ({_pct(c['failure'] / decided)} of decided traces)" if decided else ""
    out.append(f"{c['total']} traces: **{c['failure']} failed**{rate}, {c['success']} succeeded, "
               f"{c['unknown']} unknown; {c['skipped']} records skipped.")
    if analysis.duplicates:
        out += ["", _duplicates_line(analysis.duplicates) + "."]
    out.append("")
    out.append(_fit_line(analysis.fit) + ".")
    out.append("")
    if analysis.judge is not None:
        out += ["- " + _md(line) for line in judge_lines(analysis.judge)] + [""]
    if analysis.patterns:
        out += ["## Top reasons", "", "| # | pattern | kind | traces | share |", "|---:|---|---|---:|---:|"]
        for n, p in enumerate(analysis.patterns, 1):
            out.append(f"| {n} | {_md(p.title)} | {p.kind} | {p.count} | {_pct(p.share)} |")
        out.append("")
        for n, p in enumerate(analysis.patterns[:TOP], 1):
            out += [f"### {n}. {_md(p.title)}", ""]
            out += [f"- {_md(line)}" for line in _pattern_lines(p)]
            for demo in p.evidence.demonstrations[:1]:
                user, reply = excerpt(demo.user, 100), excerpt(demo.assistant, 100)
                out.append(f"- a success that looked alike ({_md(demo.trace_id)}): user "
                           f"“{_md(user)}”, agent “{_md(reply)}”")
            out.append("")
    if analysis.versions:
        out += ["## Failure rate by prompt version", "", "| version | traces | failures | rate |",
                "|---|---:|---:|---:|"]
        for v in analysis.versions:
            rate_v = v["failure_rate"]
            out.append(f"| {_md(v['prompt_version'])} | {v['traces']} | {v['failure']} | "
                       f"{'–' if rate_v is None else _pct(rate_v)} |")
        out.append("")
    out += ["## Sources", "", "| path | format | traces | skipped |", "|---|---|---:|---:|"]
    for s in analysis.sources:
        out.append(f"| {_md(s.path)} | {s.format} | {s.traces} | {s.skipped} |")
    return "\n".join(out) + "\n"


def write_markdown(analysis: Analysis, path: Path) -> None:
    write_atomic(path, [markdown(analysis)])

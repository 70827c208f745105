"""An eval run for people and tools: a rich table, JUnit XML, Markdown for a pull request.

Owns: rendering an `EvalResult` (slices base vs candidate, flipped cases with both outputs, the
statistics, calls/tokens/cost, the verdict and its reasons, the prompt diff when the gate passes) and
writing the JUnit and Markdown files atomically.

Must never: compute anything the gate decides (it only shows `EvalResult`), or write half a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from selfimprove.files import write_atomic

if TYPE_CHECKING:
    from rich.console import Console

    from selfimprove.evals.runner import CaseResult, EvalResult, Trial


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _delta(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f}"


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rate(trials: tuple[Trial, ...]) -> float | None:
    return sum(t.grade.passed for t in trials) / len(trials) if trials else None


def _last_output(trials: tuple[Trial, ...]) -> str:
    if not trials:
        return ""
    out = trials[-1].output
    text = out.text
    if out.tool_calls:
        text = (text + " " if text else "") + " ".join(f"[{c.name}]" for c in out.tool_calls)
    return text


def _side(ref: str, sha: str) -> str:
    """`main (1a2b3c4)`, or just the short sha when the ref is a sha."""
    return sha[:7] if sha.startswith(ref) else f"{ref} ({sha[:7]})"


def _stats_line(result: EvalResult) -> str | None:
    gate = result.gate
    if gate.p_value is None or gate.ci is None:
        return None
    confidence = round((1 - result.alpha) * 100)
    return (f"p = {gate.p_value:.4g} (paired exact McNemar test, {len(gate.regressed)} regressed / "
            f"{len(gate.fixed)} fixed); {confidence}% CI of the difference "
            f"[{gate.ci[0] * 100:+.1f}, {gate.ci[1] * 100:+.1f}] points")


def _usage_line(result: EvalResult) -> str:
    u = result.usage
    return (f"calls: {u.made} made, {u.cached} cached · tokens: {u.input_tokens} in, {u.output_tokens} out · "
            f"cost: ${u.cost_usd:.4f}")


def split_line(result: EvalResult) -> str | None:
    """The dev → held-out gap: a gain on the cases a search saw that the held-out ones do not show."""
    split = result.split
    if not split:
        return None
    dev, held = split["dev"], split["held_out"]
    gap = split.get("gap")
    return (f"held-out {held['cases']} cases (eval.holdout {split['holdout']:g}; the gate judged these): "
            f"{_delta(held['gain'])} points; dev {dev['cases']} cases: {_delta(dev['gain'])} points; "
            f"dev → held-out gap {_delta(gap)} points")


def render(result: EvalResult, console: Console, *, verbose: bool = False) -> None:
    """The human report (the caller's console is stderr)."""
    from rich.table import Table

    gate = result.gate
    console.print(f"eval {_side(result.candidate.ref, result.candidate.sha)} against "
                  f"{_side(result.base.ref, result.base.sha)} · {result.model} · {len(result.cases)} cases × "
                  f"{result.repeats} repeat{'s' if result.repeats != 1 else ''}")
    if result.violations:
        console.print("policy violations (the candidate is refused whatever its scores):")
        for violation in result.violations:
            console.print(f"  {violation}")
    if result.cases:
        table = Table(title="pass rates", title_justify="left")
        for name, justify in (("slice", "left"), ("cases", "right"), ("base", "right"),
                              ("candidate", "right"), ("Δ points", "right")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        # with a split, the gate (and so this table) judged the held-out cases only
        label, count = (("held-out", result.split["held_out"]["cases"]) if result.split
                        else ("all", len(result.cases)))
        table.add_row(label, str(count), _pct(gate.base_rate), _pct(gate.candidate_rate), _delta(gate.gain))
        for tag, s in gate.slices.items():
            table.add_row(tag, str(s.cases), _pct(s.base), _pct(s.candidate), _delta(s.delta))
        console.print(table)
        flipped = result.flipped()
        if flipped:
            cases = Table(title="flipped cases", title_justify="left")
            for name in ("case", "", "base output", "candidate output"):
                cases.add_column(name, overflow="fold")
            for status, r in flipped:
                cases.add_row(r.case.id, status, _one_line(_last_output(r.base), 160),
                              _one_line(_last_output(r.candidate), 160))
            console.print(cases)
        if verbose:
            for r in result.cases:
                failures = r.candidate[-1].grade.failures if r.candidate else []
                if failures:
                    console.print(f"  {r.case.id}: candidate fails {'; '.join(failures)}")
        stats = _stats_line(result)
        if stats:
            console.print(stats)
        split = split_line(result)
        if split:
            console.print(split)
    console.print(_usage_line(result))
    if result.verdict == "pass":
        console.print(f"verdict: PASS — {result.candidate.ref} may be merged after review")
        for reason in gate.reasons:  # a no-effect change the caller allowed says so
            console.print(f"  - {reason}", markup=False)
        if result.diff:
            console.print("prompt diff (base → candidate):")
            # never hard-wrapped: every line keeps its +/- marker, so the diff can be piped or applied
            console.print(result.diff.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print("verdict: NO-EFFECT" if result.verdict == "no-effect" else "verdict: FAIL")
        for reason in gate.reasons:
            console.print(f"  - {reason}", markup=False)


def junit(result: EvalResult) -> str:
    """JUnit XML: one test case per eval case (failing when the candidate fails it), plus the gate."""
    rows: list[str] = []
    failures = 0
    for r in result.cases:
        rows.append(_junit_case(r))
        failures += 0 if (_rate(r.candidate) or 0.0) > 0.5 else 1
    gate_failed = result.verdict != "pass"
    failures += int(gate_failed)
    gate_row = '    <testcase classname="selfimprove.gate" name="gate"'
    if gate_failed:
        message = "; ".join(result.gate.reasons)
        gate_row += (f">\n      <failure message={quoteattr(message)}>{escape(message)}</failure>\n"
                     "    </testcase>")
    else:
        gate_row += " />"
    rows.append(gate_row)
    name = f"selfimprove eval {result.candidate.ref}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<testsuites>\n  <testsuite name={quoteattr(name)} tests=\"{len(result.cases) + 1}\" "
        f"failures=\"{failures}\" errors=\"0\">\n"
        f"    <properties>\n"
        f"      <property name=\"base\" value={quoteattr(result.base.sha)} />\n"
        f"      <property name=\"candidate\" value={quoteattr(result.candidate.sha)} />\n"
        f"      <property name=\"model\" value={quoteattr(result.model)} />\n"
        f"      <property name=\"verdict\" value={quoteattr(result.verdict)} />\n"
        f"    </properties>\n"
        + "\n".join(rows)
        + "\n  </testsuite>\n</testsuites>\n"
    )


def _junit_case(r: CaseResult) -> str:
    name = r.case.description or r.case.id
    group = "selfimprove.eval." + (r.case.tags[0] if r.case.tags else "cases")
    head = f"    <testcase classname={quoteattr(group)} name={quoteattr(name)} file={quoteattr(r.case.where)}"
    rate = _rate(r.candidate) or 0.0
    if rate > 0.5:
        return head + " />"
    failures = r.candidate[-1].grade.failures if r.candidate else []
    message = "; ".join(failures) or "failed"
    base_rate = _rate(r.base) or 0.0
    detail = (f"case {r.case.id}: candidate pass rate {rate:.2f}, base {base_rate:.2f}"
              f"{' (regressed)' if base_rate > 0.5 else ''}\noutput: {_last_output(r.candidate)}")
    return (head + f">\n      <failure message={quoteattr(message)}>{escape(detail)}</failure>\n"
            "    </testcase>")


_MD_VERDICT = {"pass": "✅ pass", "no-effect": "⚪ no effect", "fail": "❌ fail"}


def markdown(result: EvalResult) -> str:
    """A report ready to paste into a pull request."""
    gate = result.gate
    lines = [
        f"## selfimprove eval: {_MD_VERDICT.get(result.verdict, '❌ fail')}",
        "",
        f"Candidate `{result.candidate.ref}` (`{result.candidate.sha[:7]}`) against base "
        f"`{result.base.ref}` (`{result.base.sha[:7]}`), model `{result.model}`, {len(result.cases)} cases × "
        f"{result.repeats} repeat{'s' if result.repeats != 1 else ''}.",
        "",
    ]
    if gate.reasons:
        heading = "**Why it fails:**" if result.verdict != "pass" else "**Note:**"
        lines += [heading, ""] + [f"- {_md(reason)}" for reason in gate.reasons] + [""]
    if result.cases:
        lines += ["| slice | cases | base | candidate | Δ points |", "|---|---:|---:|---:|---:|",
                  f"| all | {len(result.cases)} | {_pct(gate.base_rate)} | {_pct(gate.candidate_rate)} | "
                  f"{_delta(gate.gain)} |"]
        lines += [f"| {_md(tag)} | {s.cases} | {_pct(s.base)} | {_pct(s.candidate)} | {_delta(s.delta)} |"
                  for tag, s in gate.slices.items()]
        lines.append("")
        flipped = result.flipped()
        if flipped:
            lines += ["| case | | base output | candidate output |", "|---|---|---|---|"]
            lines += [f"| `{_md(r.case.id)}` | {status} | {_md(_one_line(_last_output(r.base), 200))} | "
                      f"{_md(_one_line(_last_output(r.candidate), 200))} |" for status, r in flipped]
            lines.append("")
        stats = _stats_line(result)
        if stats:
            lines += [stats, ""]
    lines += [_usage_line(result), ""]
    if result.verdict == "pass" and result.diff:
        fence = "```"
        while fence in result.diff:
            fence += "`"
        lines += ["<details><summary>Prompt diff</summary>", "", f"{fence}diff", result.diff.rstrip("\n"),
                  fence, "", "</details>", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_junit(result: EvalResult, path: Path) -> None:
    write_atomic(path, [junit(result)])


def write_markdown(result: EvalResult, path: Path) -> None:
    write_atomic(path, [markdown(result)])

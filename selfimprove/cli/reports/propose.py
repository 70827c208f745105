"""A propose run for people: the branches written (or that would be), the refusals, what it spent.

Never does: decide anything; it only shows a `ProposeResult` (its JSON is `ProposeResult.to_json`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from selfimprove.proposals import ProposeResult


def render(result: ProposeResult, console: Console, notices: Console) -> None:
    """Each proposal (branch, pattern, proposer, title; the diff of a dry run), each refusal, what the
    run spent, on `console`; what to do next on `notices`."""
    for p in result.proposals:
        verb = {"created": "created", "exists": "exists ", "dry-run": "would create"}[p.status]
        console.print(f"{verb} {p.branch}  ({p.pattern}, {p.proposer})", markup=False, soft_wrap=True)
        console.print(f"  {p.title}", markup=False, soft_wrap=True)
        if p.search is not None:
            dev = p.search["dev"]
            console.print(f"  search: {p.search['rounds']} rounds, {len(p.search['candidates'])} candidates; "
                          f"dev {dev['base']}/{dev['cases']} → {dev['best']}/{dev['cases']}",
                          markup=False, soft_wrap=True)
        if p.status == "dry-run":
            console.file.write(p.diff)
    for r in result.rejected:
        console.print(f"refused {r.pattern}: {r.reason}", markup=False, soft_wrap=True)
    if result.stopped:
        console.print(f"stopped: {result.stopped} (what was done is listed above)", markup=False,
                      soft_wrap=True)
    if result.calls:
        console.print(f"calls: {result.calls}", markup=False, soft_wrap=True)
    if result.cost_usd or result.input_tokens:
        console.print(f"model: {result.input_tokens} input + {result.output_tokens} output tokens, "
                      f"${result.cost_usd:.4f}", markup=False, soft_wrap=True)
    written = [p for p in result.proposals if p.status != "dry-run"]
    if written:
        notices.print(f"next: selfimprove eval {written[0].branch}", markup=False, soft_wrap=True)
    elif not result.proposals and not result.rejected:
        console.print("no failure patterns to propose for", markup=False, soft_wrap=True)

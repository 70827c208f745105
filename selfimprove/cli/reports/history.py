"""The loop's record for people: the history table, its metrics and the production check.

Never does: build the ledger (that is `selfimprove.history`); it only shows its JSON document.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def render(doc: Mapping[str, Any], console: Console, notices: Console, *, verbose: bool = False) -> None:
    """The ledger (`history.to_json`) as a table and its metrics on `console`, warnings on `notices`."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"selfimprove history of {doc['branch'] or 'HEAD'}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("when", "event", "commit"):
        table.add_column(name, no_wrap=True)
    for name in ("what", "detail"):
        table.add_column(name, overflow="fold")
    for row in doc["events"]:
        when = row["at"][:16].replace("T", " ")
        table.add_row(when, row["event"], row["commit"][:7], row["what"], row["detail"])
    console.print(table if doc["events"] else "no proposals, merges or rollbacks yet")
    m = doc["metrics"]
    console.print(
        f"{m['proposals']} proposal{'' if m['proposals'] == 1 else 's'} ({m['evaluated']} evaluated), "
        f"improvement rate {_pct(m['improvement_rate'])}; "
        f"{m['merged']} merged, regression rate {_pct(m['regression_rate'])}, validation coverage "
        f"{_pct(m['validation_coverage'])}; median hours to merge {_num(m['hours_to_merge']['median'])}")
    for warning in doc["warnings"]:
        notices.print(f"warning: {warning}")
    if verbose:  # every proposal with what the table leaves out: pattern, proposer, base, verdict, merge
        for p in doc["proposals"]:
            merged = f"merged by {p['merged_by'][:7]}" if p["merged_by"] else "not merged"
            console.print(f"{p['branch']}: pattern {p['pattern']}, proposer {p['proposer']}, base "
                          f"{(p['base'] or '-')[:7]}, verdict {p['verdict'] or 'not evaluated'}, {merged}",
                          markup=False, soft_wrap=True)
    production = doc.get("production")
    if production:
        for version in production["versions"]:
            rates = ", ".join(f"{k} {_pct(v['rate'])}" for k, v in version["patterns"].items())
            console.print(f"v{version['version']} {version['label']}: {version['traces']} traces, "
                          f"failure rate {_pct(version['failure_rate'])}; {rates or 'no failures'}")
        for check in production["changes"]:
            if check["kind"] == "change":
                verdict = {True: "fix held", False: "fix did NOT hold", None: "not enough traces to tell"}
                summary = verdict[check["held"]]
            else:
                summary = f"{check['traces_before']} traces before, {check['traces_after']} after"
            worse = f"; worse: {', '.join(check['worse'])}" if check["worse"] else ""
            console.print(f"{check['label']}: {summary}{worse}")

"""The loop's record, read back from git: proposals, eval verdicts, merges, rollbacks and metrics.

Owns: the `Ledger` (built from commit trailers, the first-parent history of the current branch and
the eval notes in `refs/notes/selfimprove`), the process metrics of `selfimprove history`, and the
production check (`history --traces`): per prompt version, how often each failure pattern occurs, before
and after each merged change.

Never: writes anything (history is a pure reader; rollback writes through `gitrepo`), or trusts a note
blindly (a note that is not a `selfimprove.eval/v1` document is reported and ignored).

Why git and nothing else: the record must survive clones and code review, and must not drift from
what actually shipped. A merge is what the current branch's first-parent history says it is, and a
change counts as validated only when a passing eval note sits on the exact commit that was merged.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfimprove.errors import SelfImproveError

if TYPE_CHECKING:
    from selfimprove.gitrepo import Commit, Repo

SCHEMA = "selfimprove.history/v1"
EVAL_SCHEMA_PREFIX = "selfimprove.eval/"
PROPOSAL_PREFIX = "selfimprove/"
T_PATTERN = "Selfimprove-Pattern"
T_BASE = "Selfimprove-Base"
T_PROPOSER = "Selfimprove-Proposer"
T_ROLLBACK_OF = "Selfimprove-Rollback-Of"
T_RESTORED_FROM = "Selfimprove-Restored-From"


@dataclass(frozen=True)
class Proposal:
    commit: str
    title: str
    pattern: str
    base: str | None
    proposer: str | None
    created_at: datetime
    branch: str | None = None
    verdict: str | None = None  # from the eval note on the proposal commit (or its branch tip)
    eval: Mapping[str, Any] | None = None
    merged_by: str | None = None  # the Change.commit that brought it onto the current branch


@dataclass(frozen=True)
class Change:
    """A selfimprove change that landed on the current branch."""

    commit: str  # the first-parent commit that brought it in: a merge commit, or the proposal commit itself
    kind: str  # "merge" | "direct" (fast-forward, cherry-pick, rebase)
    at: datetime
    before: str  # the version before the change (first parent)
    merged_commit: str  # the exact commit merged (second parent of a merge, or the commit itself)
    proposals: tuple[str, ...]
    title: str
    patterns: tuple[str, ...]
    validated: bool  # a passing eval note on merged_commit
    rolled_back_by: str | None = None
    hours_to_merge: float | None = None


@dataclass(frozen=True)
class Rollback:
    commit: str
    at: datetime
    subject: str
    rollback_of: tuple[str, ...]
    restored_from: str | None


@dataclass(frozen=True)
class Ledger:
    branch: str | None
    head: str | None
    proposals: tuple[Proposal, ...]  # newest first
    changes: tuple[Change, ...]  # newest first
    rollbacks: tuple[Rollback, ...]  # newest first
    chain: tuple[str, ...] = ()  # first-parent history of HEAD, newest first
    warnings: tuple[str, ...] = ()
    commit_times: Mapping[str, datetime] = field(default_factory=dict)

    def latest_change(self) -> Change | None:
        """The newest merged change that has not been rolled back."""
        return next((c for c in self.changes if c.rolled_back_by is None), None)


def _title(subject: str) -> str:
    return subject.removeprefix("selfimprove:").strip() or subject


def _parse_note(sha: str, text: str, warnings: list[str]) -> Mapping[str, Any] | None:
    try:
        doc = json.loads(text)
    except ValueError:
        warnings.append(f"note on {sha[:7]} is not JSON; ignored")
        return None
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith(EVAL_SCHEMA_PREFIX):
        warnings.append(f"note on {sha[:7]} is not a {EVAL_SCHEMA_PREFIX}v1 document; ignored")
        return None
    candidate = doc.get("candidate")
    if isinstance(candidate, dict) and candidate.get("sha") and candidate["sha"] != sha:
        warnings.append(f"note on {sha[:7]} describes another commit ({str(candidate['sha'])[:7]}); ignored")
        return None
    return doc


def build_ledger(repo: Repo) -> Ledger:
    """Read proposals, eval notes, merges and rollbacks of the current branch from git."""
    head = repo.head_sha()
    branch = repo.current_branch()
    warnings: list[str] = []
    commits: dict[str, Commit] = {c.sha: c for c in repo.log("HEAD")} if head else {}

    chain: list[str] = []
    sha: str | None = head
    while sha is not None and sha in commits:
        chain.append(sha)
        parents = commits[sha].parents
        sha = parents[0] if parents else None

    # which commits each first-parent commit brought in (a merge brings its whole side branch)
    introduced_by: dict[str, str] = {}
    brought: dict[str, list[str]] = {}
    for tip in reversed(chain):
        stack, mine = [tip], []
        while stack:
            current = stack.pop()
            if current in introduced_by or current not in commits:
                continue
            introduced_by[current] = tip
            mine.append(current)
            stack.extend(commits[current].parents)
        brought[tip] = mine

    evals: dict[str, Mapping[str, Any]] = {}
    for annotated, text in repo.notes().items():
        doc = _parse_note(annotated, text, warnings)
        if doc is not None:
            evals[annotated] = doc

    # proposal commits: in this history, at selfimprove/* branch tips (or just below), or evaluated
    branch_of: dict[str, str] = {}
    tip_of: dict[str, str] = {}
    on_chain = set(chain)
    for name, tip in sorted(repo.branches(PROPOSAL_PREFIX).items()):
        known = commits.get(tip)
        walk = [known] if known is not None and T_PATTERN in known.trailers else repo.log(tip, max_count=20)
        for commit in walk:
            if commit.sha != tip and commit.sha in on_chain:
                break  # reached the main line: older proposals there are not this branch's
            commits.setdefault(commit.sha, commit)
            if T_PATTERN in commit.trailers:
                branch_of.setdefault(commit.sha, name)
                tip_of.setdefault(commit.sha, tip)
                break
    for annotated in evals:
        if annotated not in commits and repo.try_resolve(annotated):
            commits[annotated] = repo.log(annotated, max_count=1)[0]

    def verdict_of(sha: str) -> tuple[str | None, Mapping[str, Any] | None]:
        doc = evals.get(sha) or evals.get(tip_of.get(sha, ""))
        return (str(doc.get("verdict")) if doc and doc.get("verdict") else None), doc

    changes: list[Change] = []
    rollbacks: list[Rollback] = []
    rolled: dict[str, str] = {}  # undone commit -> rollback commit (the newest one wins)
    for sha in chain:  # newest first: later rollbacks are seen first
        commit = commits[sha]
        if T_ROLLBACK_OF in commit.trailers:
            of = tuple(commit.trailers[T_ROLLBACK_OF])
            restored = commit.trailers.get(T_RESTORED_FROM, (None,))[0]
            rollbacks.append(Rollback(sha, commit.committed_at, commit.subject, of, restored))
            for undone in of:
                rolled.setdefault(undone, sha)
    for sha in chain:
        commit = commits[sha]
        if not commit.parents:
            continue
        if T_PATTERN in commit.trailers:
            kind, merged, props = "direct", sha, [sha]
        elif len(commit.parents) > 1:
            props = [c for c in brought.get(sha, []) if c != sha and T_PATTERN in commits[c].trailers]
            if not props:
                continue
            kind, merged = "merge", commit.parents[1]
        else:
            continue
        props.sort(key=lambda c: commits[c].committed_at, reverse=True)
        verdict, doc = verdict_of(merged) if merged in evals else (None, None)
        undone_by = rolled.get(sha) or rolled.get(merged)
        undone_by = undone_by or next((rolled[p] for p in props if p in rolled), None)
        first_proposed = min(commits[p].committed_at for p in props)
        hours = None
        if kind == "merge":
            hours = round((commit.committed_at - first_proposed).total_seconds() / 3600, 2)
        changes.append(Change(
            commit=sha, kind=kind, at=commit.committed_at, before=commit.parents[0], merged_commit=merged,
            proposals=tuple(props), title=_title(commits[props[0]].subject),
            patterns=tuple(dict.fromkeys(commits[p].trailers[T_PATTERN][0] for p in props)),
            validated=verdict == "pass", rolled_back_by=undone_by, hours_to_merge=hours))

    proposal_shas = {c for c in commits if T_PATTERN in commits[c].trailers}
    proposals = []
    for sha in proposal_shas:
        commit = commits[sha]
        verdict, doc = verdict_of(sha)
        trailers = commit.trailers
        proposals.append(Proposal(
            commit=sha, title=_title(commit.subject), pattern=trailers[T_PATTERN][0],
            base=trailers.get(T_BASE, (None,))[0], proposer=trailers.get(T_PROPOSER, (None,))[0],
            created_at=commit.committed_at, branch=branch_of.get(sha), verdict=verdict, eval=doc,
            merged_by=introduced_by.get(sha)))
    proposals.sort(key=lambda p: (p.created_at, p.commit), reverse=True)
    times = {sha: commits[sha].committed_at for sha in chain}
    return Ledger(branch, head, tuple(proposals), tuple(changes), tuple(rollbacks), tuple(chain),
                  tuple(warnings), times)


# -- windows and metrics ----------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)\s*([hdw])$")


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """`30d`, `12h`, `2w`, or an ISO date/time (UTC when no zone is given)."""
    if not text:
        return None
    now = now or datetime.now(timezone.utc)
    match = _RELATIVE.match(text.strip().lower())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(hours=amount * {"h": 1, "d": 24, "w": 168}[unit])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SelfImproveError(f"--since {text!r} is not a date or a duration",
                               hint="use e.g. 30d, 12h, 2w or 2026-01-31") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def metrics(ledger: Ledger, *, since: datetime | None = None) -> dict[str, Any]:
    """Process metrics over the window starting at `since` (all history when None)."""
    proposals = [p for p in ledger.proposals if since is None or p.created_at >= since]
    evaluated = [p for p in proposals if p.verdict is not None]
    passed = [p for p in evaluated if p.verdict == "pass"]
    merged = [c for c in ledger.changes if since is None or c.at >= since]
    rolled = [c for c in merged if c.rolled_back_by is not None]
    covered = [c for c in merged if c.validated]
    hours = [c.hours_to_merge for c in merged if c.hours_to_merge is not None]
    return {
        "since": since.isoformat() if since else None,
        "proposals": len(proposals),
        "evaluated": len(evaluated),
        "passed": len(passed),
        "merged": len(merged),
        "rolled_back": len(rolled),
        "improvement_rate": _share(len(passed), len(evaluated)),  # of what the gate measured
        "regression_rate": _share(len(rolled), len(merged)),
        "validation_coverage": _share(len(covered), len(merged)),
        "hours_to_merge": {
            "median": round(statistics.median(hours), 2) if hours else None,
            "mean": round(statistics.fmean(hours), 2) if hours else None,
            "count": len(hours),
        },
    }


def events(ledger: Ledger, *, since: datetime | None = None) -> list[dict[str, Any]]:
    """One row per proposal, merge and rollback, newest first (the table of `selfimprove history`)."""
    rows: list[dict[str, Any]] = []
    for p in ledger.proposals:
        detail = f"pattern {p.pattern}; eval {p.verdict or 'not run'}"
        rows.append({"at": p.created_at, "event": "proposal", "commit": p.commit,
                     "what": p.branch or p.title, "detail": detail})
    for c in ledger.changes:
        state = "validated" if c.validated else "no passing eval on the merged commit"
        if c.rolled_back_by:
            state += f"; rolled back by {c.rolled_back_by[:7]}"
        rows.append({"at": c.at, "event": "merge" if c.kind == "merge" else "commit", "commit": c.commit,
                     "what": c.title, "detail": state})
    for r in ledger.rollbacks:
        rows.append({"at": r.at, "event": "rollback", "commit": r.commit,
                     "what": _title(r.subject).removeprefix("rollback").strip() or r.subject,
                     "detail": "undoes " + ", ".join(s[:7] for s in r.rollback_of)})
    rows = [r for r in rows if since is None or r["at"] >= since]
    rows.sort(key=lambda r: (r["at"], r["event"] != "proposal"), reverse=True)
    return rows


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def to_json(ledger: Ledger, *, since: datetime | None = None,
            production: Mapping[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "branch": ledger.branch,
        "head": ledger.head,
        "metrics": metrics(ledger, since=since),
        "proposals": [{
            "commit": p.commit, "branch": p.branch, "title": p.title, "pattern": p.pattern, "base": p.base,
            "proposer": p.proposer, "created_at": _iso(p.created_at), "verdict": p.verdict,
            "merged_by": p.merged_by,
        } for p in ledger.proposals if since is None or p.created_at >= since],
        "merges": [{
            "commit": c.commit, "kind": c.kind, "at": _iso(c.at), "before": c.before,
            "merged_commit": c.merged_commit, "proposals": list(c.proposals), "title": c.title,
            "patterns": list(c.patterns), "validated": c.validated, "rolled_back_by": c.rolled_back_by,
            "hours_to_merge": c.hours_to_merge,
        } for c in ledger.changes if since is None or c.at >= since],
        "rollbacks": [{
            "commit": r.commit, "at": _iso(r.at), "subject": r.subject, "rollback_of": list(r.rollback_of),
            "restored_from": r.restored_from,
        } for r in ledger.rollbacks if since is None or r.at >= since],
        "events": [{**row, "at": _iso(row["at"])} for row in events(ledger, since=since)],
        "warnings": list(ledger.warnings),
    }
    if production is not None:
        doc["production"] = production
    return doc


# -- production check -------------------------------------------------------------------------------


def fisher_greater(a: int, n1: int, b: int, n2: int) -> float:
    """One-sided Fisher exact p-value that the rate b/n2 is greater than a/n1."""
    total, hits = n1 + n2, a + b
    if n1 == 0 or n2 == 0 or hits == 0:
        return 1.0
    denom = math.comb(total, hits)
    p = sum(math.comb(n2, k) * math.comb(n1, hits - k) for k in range(b, min(n2, hits) + 1)) / denom
    return round(min(1.0, p), 6)


@dataclass
class _Segment:
    index: int
    label: str
    commit: str | None
    traces: int = 0
    failures: int = 0
    patterns: dict[str, int] = field(default_factory=dict)
    recorded: dict[str, int] = field(default_factory=dict)  # recorded prompt versions placed here


def _boundaries(ledger: Ledger) -> list[tuple[str, str, datetime]]:
    """The versions of the managed files on this branch, oldest first: each merged change and rollback."""
    marks: list[tuple[str, str, datetime]] = []
    for c in ledger.changes:
        marks.append((c.commit, f"after {'merge' if c.kind == 'merge' else 'commit'} {c.commit[:7]} "
                                f"({c.title})", c.at))
    for r in ledger.rollbacks:
        marks.append((r.commit, f"after rollback {r.commit[:7]}", r.at))
    position = {sha: i for i, sha in enumerate(reversed(ledger.chain))}
    marks.sort(key=lambda m: position.get(m[0], -1))
    return marks


# (prompt_version, started_at, outcome, pattern) of one trace
Placement = tuple[str | None, datetime | None, str, str | None]


def production_check(repo: Repo, ledger: Ledger, paths: Sequence[Path], *, format: str = "auto",
                     alpha: float = 0.05, outcomes: Iterable[Placement] | None = None) -> dict[str, Any]:
    """Per prompt version, the rate of each failure pattern; before/after each merged change.

    A trace is placed by its recorded prompt version when that names a commit of this repo (the version
    in force is the newest change at or before it); otherwise, by its start time between merges.
    `outcomes` (prompt_version, started_at, outcome, pattern) replaces reading `paths` (for tests)."""
    if outcomes is None:
        outcomes = _read_outcomes(paths, format=format)
    marks = _boundaries(ledger)
    segments = [_Segment(0, "before the first change" if marks else "all traces", None)]
    segments += [_Segment(i + 1, label, sha) for i, (sha, label, _) in enumerate(marks)]
    chain_pos = {sha: i for i, sha in enumerate(reversed(ledger.chain))}
    mark_pos = [chain_pos.get(sha, -1) for sha, _, _ in marks]
    placed_by = {"version": 0, "time": 0, "unplaced": 0}
    version_cache: dict[str, int | None] = {}

    def by_version(version: str) -> int | None:
        if version not in version_cache:
            sha = repo.try_resolve(version) if re.fullmatch(r"[^\s:]{1,200}", version) else None
            index: int | None = None
            if sha is not None:
                anchor: str | None = sha
                if sha not in chain_pos:
                    anchor = repo.merge_base(sha, ledger.head) if ledger.head else None
                if anchor is not None and anchor in chain_pos:
                    index = sum(1 for pos in mark_pos if 0 <= pos <= chain_pos[anchor])
            version_cache[version] = index
        return version_cache[version]

    def by_time(when: datetime) -> int:
        return sum(1 for _, _, at in marks if at <= when)

    unknown_versions: set[str] = set()
    for version, started, outcome, pattern in outcomes:
        index = by_version(version) if version else None
        if index is not None:
            placed_by["version"] += 1
        elif started is not None:
            if version:
                unknown_versions.add(version)
            index = by_time(started if started.tzinfo else started.replace(tzinfo=timezone.utc))
            placed_by["time"] += 1
        else:
            placed_by["unplaced"] += 1
            continue
        segment = segments[index]
        segment.traces += 1
        if version:
            segment.recorded[version] = segment.recorded.get(version, 0) + 1
        if outcome == "failure":
            segment.failures += 1
            if pattern:
                segment.patterns[pattern] = segment.patterns.get(pattern, 0) + 1

    def rate(count: int, total: int) -> float | None:
        return round(count / total, 4) if total else None

    versions = [{
        "version": s.index, "label": s.label, "commit": s.commit, "traces": s.traces, "failures": s.failures,
        "failure_rate": rate(s.failures, s.traces),
        "patterns": {k: {"count": v, "rate": rate(v, s.traces)} for k, v in sorted(s.patterns.items())},
        "recorded_versions": dict(sorted(s.recorded.items(), key=lambda kv: -kv[1])[:10]),
    } for s in segments]

    changes_by_commit = {c.commit: c for c in ledger.changes}
    checks = []
    for i, (sha, label, _) in enumerate(marks):
        before, after = segments[i], segments[i + 1]
        change = changes_by_commit.get(sha)
        targets = list(change.patterns) if change else []
        rows: list[dict[str, Any]] = []
        held: bool | None = None
        if targets and before.traces and after.traces:
            held = True
        worse: list[str] = []
        for name in sorted(set(before.patterns) | set(after.patterns) | set(targets)):
            b, a = before.patterns.get(name, 0), after.patterns.get(name, 0)
            p_worse = fisher_greater(b, before.traces, a, after.traces)
            if held is not None and name in targets and not a / after.traces < b / before.traces:
                held = False
            if name not in targets and p_worse < alpha:
                worse.append(name)
            rows.append({
                "pattern": name, "targeted": name in targets,
                "before": rate(b, before.traces), "after": rate(a, after.traces),
                "p_worse": p_worse, "p_better": fisher_greater(a, after.traces, b, before.traces),
            })
        checks.append({"commit": sha, "label": label, "kind": "change" if change else "rollback",
                       "targets": targets, "traces_before": before.traces, "traces_after": after.traces,
                       "held": held, "worse": worse, "patterns": rows})
    return {"versions": versions, "changes": checks, "placed_by": placed_by,
            "unknown_versions": sorted(unknown_versions), "alpha": alpha}


def _read_outcomes(paths: Sequence[Path], *, format: str) -> list[Placement]:
    """Read traces through the analyze readers; (prompt_version, started_at, outcome, pattern) per trace."""
    from selfimprove.analysis import analyze
    from selfimprove.traces.read import read_traces

    stamps: dict[str, tuple[str | None, datetime | None]] = {}
    for trace in read_traces(list(paths), format=format):
        stamps[trace.id] = (trace.prompt_version, trace.started_at)
    analysis = analyze(list(paths), format=format)
    rows = []
    for outcome in analysis.outcomes:
        version, started = stamps.get(outcome.trace_id, (None, None))
        rows.append((version, started, outcome.outcome, outcome.pattern))
    return rows

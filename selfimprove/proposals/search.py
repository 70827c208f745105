"""`propose --search`: a reflective search per pattern, scored on the dev cases, bounded and gated.

Owns the loop (GEPA-class): per pattern (or, with `from_suite`, once for the suite's own failing dev
cases) the base is scored on the dev cases; each round proposes up to k candidates, every one of which
passes the same checks as a single-shot proposal (`service.vet`: near-duplicates, the policy, the
contradiction check) and is scored on the dev cases with the eval runner (its cache means an unchanged
prompt is never asked twice); the next round is written from the failed dev cases (input, output, each
failed assertion's reason) beside the pattern's evidence, the current prompt and the earlier
candidates' scores. The per-case Pareto set is kept and complementary members are merged. It stops on
a perfect dev score, after `patience` rounds without gain, after `rounds`, or when the budget is spent.
The winner (best dev score, no dev case broken that the base passed, above the base) becomes the branch;
its lineage goes in the commit body, a git note (`refs/notes/selfimprove-search`) and the JSON.

Must never: show a proposer a held-out case (only dev cases are run and only their failures are handed
on), write anything but the winner's branch and its note (candidates are scored as commits no ref points
at), or let a candidate skip the checks because it came from a merge or a later round.

Offline, the proposers are the deterministic ones plus `feedback.feedback_rules`, and the reflector is a
script: the next round merges the best candidate with a rule from what its failed dev cases expected,
and merges complementary Pareto members; so the loop is tested and runs in the bundled example.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfimprove.analysis.records import Evidence, Pattern
from selfimprove.errors import SelfImproveError
from selfimprove.proposals import branch as branches
from selfimprove.proposals.feedback import FailedCase, failed_cases, feedback_rules, relevant
from selfimprove.proposals.model import Candidate, Edit, Proposal, ProposeResult, Refusal, Rejection
from selfimprove.proposals.proposers import PROPOSERS, Proposer, choose
from selfimprove.proposals.text import append_lines

if TYPE_CHECKING:
    from selfimprove.config import Settings
    from selfimprove.gitrepo import Repo
    from selfimprove.llm import Budget, Completer
    from selfimprove.proposals.workspace import Workspace

NOTES_REF = "refs/notes/selfimprove-search"
SUITE_PATTERN = "suite"  # the pattern id of a `--from-suite` search


@dataclass(frozen=True)
class Options:
    rounds: int = 4
    k: int = 3
    patience: int = 2
    from_suite: bool = False


@dataclass(frozen=True)
class Scored:
    """One candidate of the search: checked, then scored on the dev cases (or refused with a reason)."""

    label: str  # r<round>c<n>
    round: int
    candidate: Candidate
    edits: tuple[Edit, ...] = ()
    files: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    new_lines: tuple[str, ...] = ()
    passed: frozenset[str] = frozenset()
    failed: tuple[FailedCase, ...] = ()
    refused: str = ""
    parents: tuple[str, ...] = ()

    def to_json(self, base: frozenset[str]) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.label, "round": self.round, "title": self.candidate.title,
                               "proposer": self.candidate.proposer}
        if self.parents:
            doc["parents"] = list(self.parents)
        if self.refused:
            doc["refused"] = self.refused
        else:
            doc["dev"] = len(self.passed)
            doc["fixed"] = sorted(self.passed - base)
            doc["broke"] = sorted(base - self.passed)
        return doc


@dataclass
class _Run:
    """The state of one pattern's search."""

    dev: tuple[str, ...]
    base_passed: frozenset[str]
    base_failed: tuple[FailedCase, ...]
    scored: list[Scored] = dataclasses.field(default_factory=list)
    rounds: int = 0
    stopped: str = ""

    def eligible(self) -> list[Scored]:
        return [s for s in self.scored if not s.refused and self.base_passed <= s.passed]

    def best(self) -> Scored | None:
        """The most dev cases passed; on a tie the earlier candidate (a proposer's own before a merge)."""
        ok = self.eligible()
        return max(ok, key=lambda s: (len(s.passed), -self.scored.index(s))) if ok else None

    def pareto(self) -> list[Scored]:
        ok = self.eligible()
        return [s for s in ok if not any(o.passed > s.passed for o in ok)]

    def lineage(self) -> dict[str, Any]:
        best = self.best()
        return {
            "rounds": self.rounds,
            "candidates": [s.to_json(self.base_passed) for s in self.scored],
            "dev": {"cases": len(self.dev), "base": len(self.base_passed),
                    "best": len(best.passed) if best else len(self.base_passed)},
            "stopped": self.stopped,
        }


# -- scoring ----------------------------------------------------------------------------------------

_Score = tuple[frozenset[str], frozenset[str], tuple[FailedCase, ...], tuple[FailedCase, ...],
               tuple[str, ...]]


class _Scorer:
    """Dev pass sets of file versions on the base: each version is a commit no ref points at."""

    def __init__(self, settings: Settings, repo: Repo, base: str, budget: Budget | None) -> None:
        self.settings, self.repo, self.base, self.budget = settings, repo, base, budget
        self.calls = 0
        self._memo: dict[str, _Score] = {}

    def score(self, files: Mapping[str, bytes]) -> _Score:
        """(base passed, candidate passed, base failures, candidate failures, dev case ids)."""
        from selfimprove.evals.runner import run_eval

        digest = hashlib.sha256(json.dumps({p: files[p].hex() for p in sorted(files)}).encode()).hexdigest()
        if digest not in self._memo:
            sha = self.repo.commit_object(self.base, dict(files), "selfimprove: search candidate")
            result = run_eval(self.settings, self.repo, candidate=sha, base=self.base, cases="dev",
                              write_note=False, budget=self.budget)
            self.calls += result.usage.made
            base = frozenset(r.case.id for r in result.cases
                             if r.base and all(t.grade.passed for t in r.base))
            cand = frozenset(r.case.id for r in result.cases
                             if r.candidate and all(t.grade.passed for t in r.candidate))
            self._memo[digest] = (base, cand, tuple(failed_cases(result.cases, "base")),
                                  tuple(failed_cases(result.cases, "candidate")),
                                  tuple(r.case.id for r in result.cases))
        return self._memo[digest]


# -- candidates -------------------------------------------------------------------------------------

def merge(a: Candidate, b: Candidate) -> Candidate:
    """`a` with what `b` adds: b's new lines appended to a section both edit, b's other edits as they are."""
    from selfimprove.proposals.service import added_lines

    edits = list(a.edits)
    for edit in b.edits:
        same = next((i for i, e in enumerate(edits) if (e.path, e.section, e.pointer)
                     == (edit.path, edit.section, edit.pointer)), None)
        if same is None:
            edits.append(edit)
        elif edit.section is not None:
            rules, other = added_lines(edit)
            current = edits[same]
            fresh = [line for line in dict.fromkeys(_new_raw_lines(edit))
                     if line.strip() and line.strip() not in current.after]
            if fresh and (rules or other):
                edits[same] = Edit(current.path, current.section, None, current.before,
                                   append_lines(current.after, fresh))
    parts = a.title.split(" (+")[0], _count(a) + _count(b) - 1
    title = parts[0] + f" (+{parts[1]} more change{'s' if parts[1] != 1 else ''})"
    return Candidate(title=title, proposer=_proposers(a, b),
                     rationale=f"{a.rationale} {b.rationale}", edits=tuple(edits))


def _count(c: Candidate) -> int:
    """How many proposals a (merged) candidate combines, from its title."""
    tail = c.title.rpartition(" (+")[2]
    number = tail.split(" ", 1)[0]
    return 1 + int(number) if " (+" in c.title and number.isdigit() else 1


def _new_raw_lines(edit: Edit) -> list[str]:
    old = set(edit.before.splitlines())
    return [line for line in edit.after.splitlines() if line not in old]


def _proposers(a: Candidate, b: Candidate) -> str:
    names = list(dict.fromkeys(a.proposer.split("+") + b.proposer.split("+")))
    return "+".join(names)


def _first_round(pattern: Pattern | None, ws: Workspace, feedback: Sequence[FailedCase], proposer: Proposer,
                 k: int, patterns: Sequence[Pattern] = ()) -> list[Candidate | Refusal]:
    """The candidates to try, in order (the first k make round 1, the rest wait for later rounds): the
    proposer's own (offline: every grounded one; a model: k asks), one from the failed dev cases, and
    for a search of the suite, each pattern's first offline candidate."""
    out: list[Candidate | Refusal] = []
    if pattern is None:
        offline = PROPOSERS["offline"](None, None)
        for other in patterns:
            first = next(iter(offline.propose(other, ws).candidates()), None)
            if first is not None:
                out.append(first)
    else:
        for _ in range(1 if proposer.deterministic else k):
            out += proposer.propose(pattern, ws, feedback=feedback).outcomes
    out += feedback_rules(pattern, ws, feedback)
    return [c for c in out if isinstance(c, Candidate)] + [c for c in out if isinstance(c, Refusal)]


def _next_round(pattern: Pattern | None, ws: Workspace, run: _Run, proposer: Proposer,
                k: int) -> list[tuple[Candidate, tuple[str, ...]]]:
    """The reflection: from the best candidate's failed dev cases and the earlier scores, the next k."""
    best = run.best()
    reflected: list[tuple[Candidate, tuple[str, ...]]] = []
    merged_front: list[tuple[Candidate, tuple[str, ...]]] = []
    tried = {_key(s.candidate) for s in run.scored}
    if best is not None:
        failures = relevant(pattern, best.failed)
        if not proposer.deterministic and pattern is not None:  # a model reflects on what failed
            notes = [f"{s.label} \"{s.candidate.title}\": dev {len(s.passed)}/{len(run.dev)}"
                     + (f" (refused: {s.refused})" if s.refused else "") for s in run.scored]
            for candidate in proposer.propose(pattern, ws, feedback=failures, notes=notes).candidates():
                reflected.append((merge(best.candidate, candidate), (best.label,)))
        for rule in feedback_rules(pattern, ws, failures):
            merged = merge(best.candidate, rule)
            if _key(merged) not in tried:
                reflected.append((merged, (best.label,)))
    front = sorted(run.pareto(), key=lambda s: -len(s.passed))
    if best is not None and best not in front:
        front.insert(0, best)
    for i, a in enumerate(front):
        for b in front[i + 1:]:
            # complementary: each passes cases the other fails
            if a.passed - b.passed and b.passed - a.passed:
                merged = merge(a.candidate, b.candidate)
                if _key(merged) not in tried:
                    merged_front.append((merged, (a.label, b.label)))
    # what the reflection wrote and what the Pareto front merges, in turn
    out = [pair for both in itertools.zip_longest(reflected, merged_front)
           for pair in both if pair is not None]
    seen: set[str] = set()
    unique = []
    for cand, parents in out:
        if _key(cand) not in seen and _key(cand) not in tried:
            seen.add(_key(cand))
            unique.append((cand, parents))
    return unique[:k]


def _key(c: Candidate) -> str:
    return json.dumps([(e.path, e.section, e.pointer, e.after) for e in c.edits])


# -- the run ----------------------------------------------------------------------------------------

def search(settings: Settings, repo: Repo, analysis_doc: Mapping[str, Any] | None, *,
           options: Options, completer: Completer | None = None, model: str | None = None,
           pattern: str | None = None, max_n: int = 3, dry_run: bool = False, base: str | None = None,
           budget: Budget | None = None, progress: Callable[[str], None] | None = None) -> ProposeResult:
    """Search per pattern (or once for the suite) and write each winner as a branch."""
    from selfimprove.llm import BudgetExceeded, with_budget
    from selfimprove.proposals.service import (
        _memory,
        _proposal,
        _value_key,
        check_analysis,
        failed_evals,
        select_patterns,
        vet,
    )
    from selfimprove.proposals.workspace import load_workspace

    if options.k < 1 or options.rounds < 1 or options.patience < 1:
        raise SelfImproveError("--k, --rounds and --patience must be at least 1")
    if not settings.eval.suite or not settings.eval.model:
        raise SelfImproveError("--search scores candidates on the eval suite, and none is configured",
                               where=settings.path.name,
                               hint="set eval.suite and eval.model in selfimprove.yaml")
    targets: list[Pattern | None]
    suite_patterns: list[Pattern] = []
    if options.from_suite:
        targets = [None]
        if analysis_doc is not None:
            check_analysis(analysis_doc, "analysis")
            suite_patterns = list(select_patterns(analysis_doc, pattern))[:max_n]
    else:
        if analysis_doc is None:
            raise SelfImproveError("no analysis to search patterns of", hint="pass --from or --from-suite")
        check_analysis(analysis_doc, "analysis")
        targets = list[Pattern | None](select_patterns(analysis_doc, pattern)[:max_n])
    if repo.head_sha() is None and base is None:
        raise SelfImproveError("the repository has no commits yet", where=str(repo.root),
                               hint="commit your prompts first: proposals are built on a commit")
    base_sha = repo.resolve(base or "HEAD")
    ws = load_workspace(settings, repo, base_sha)
    if completer is not None:
        completer = with_budget(completer, budget)
    proposer = choose(completer, model)
    say = progress or (lambda _: None)
    scorer = _Scorer(settings, repo, base_sha, budget)
    say(_preflight(settings, len(targets), options, not proposer.deterministic, budget))

    proposals: list[Proposal] = []
    rejected: list[Rejection] = []
    stopped = ""
    guard = contextlib.nullcontext() if dry_run else repo.lock()
    with guard:
        existing = branches.existing_proposals(repo)
        failed = failed_evals(repo, existing)
        memory = _memory(repo, ws, [e for e in existing if e.branch not in failed])
        for target in targets:
            pid = SUITE_PATTERN if target is None else target.id
            try:
                run = _search_one(target, ws, scorer, memory, proposer, options, say, pid, vet,
                                  suite_patterns)
            except BudgetExceeded as exc:
                if not proposals and not rejected:
                    raise  # nothing done yet: the run is refused, not stopped
                stopped = exc.message
                say(f"{pid}: {exc.message}")
                break
            best = run.best()
            if best is None or len(best.passed) <= len(run.base_passed):
                why = (f"search found no candidate above the base on the dev cases "
                       f"({len(run.base_passed)}/{len(run.dev)} pass at the base; "
                       f"{len(run.scored)} candidates, "
                       f"{run.rounds} rounds{'; ' + run.stopped if run.stopped else ''})")
                rejected.append(Rejection(pid, why, "search"))
                if run.stopped.startswith("budget"):
                    stopped = run.stopped
                    break
                continue
            pat = target or Pattern(SUITE_PATTERN, "failing dev cases of the suite", "eval_suite",
                                    len(run.base_failed), 0.0, (), (), Evidence())
            lineage = run.lineage()
            proposal = _proposal(pat, dataclasses.replace(best.candidate, title=best.candidate.title[:72]),
                                 best.edits, best.files, base_sha)
            proposal = dataclasses.replace(proposal, search=lineage)
            if proposal.branch in failed:
                why = f"the best candidate is the change on {proposal.branch}, which failed its eval"
                rejected.append(Rejection(pid, f"{why} ({failed[proposal.branch]})", "search"))
                continue
            if not dry_run and repo.try_resolve(f"refs/heads/{proposal.branch}") is not None:
                proposals.append(dataclasses.replace(proposal, status="exists",
                                                     commit=repo.resolve(f"refs/heads/{proposal.branch}")))
                continue
            if dry_run:
                from selfimprove.proposals.service import _diff

                proposal = dataclasses.replace(proposal, status="dry-run", diff=_diff(ws, best.files))
            else:
                message = _with_lineage(branches.commit_message(proposal, pat), lineage)
                sha = branches.write(repo, proposal, message)
                note = json.dumps({"schema": "selfimprove.search/v1", **lineage}, ensure_ascii=False)
                repo.note_add(sha, note, ref=NOTES_REF)
                proposal = dataclasses.replace(proposal, commit=sha)
            memory.add(list(best.new_lines), proposal.branch)
            for edit in best.edits:
                if edit.pointer is not None:
                    memory.add_value(_value_key(edit), proposal.branch)
            proposals.append(proposal)
            if run.stopped.startswith("budget"):
                stopped = run.stopped
                break
    usage = (budget.input_tokens, budget.output_tokens, budget.cost_usd) if budget else (0, 0, 0.0)
    return ProposeResult(base=base_sha, dry_run=dry_run, proposals=tuple(proposals), rejected=tuple(rejected),
                         input_tokens=usage[0], output_tokens=usage[1], cost_usd=usage[2], stopped=stopped,
                         calls=budget.calls if budget is not None else scorer.calls)


def _search_one(target: Pattern | None, ws: Workspace, scorer: _Scorer, memory: Any, proposer: Proposer,
                options: Options, say: Callable[[str], None], pid: str, vet: Callable[..., Any],
                patterns: Sequence[Pattern]) -> _Run:
    from selfimprove.llm import BudgetExceeded

    base_passed, _, base_failed, _, dev = scorer.score({})
    run = _Run(dev, base_passed, base_failed)
    if not dev:
        raise SelfImproveError("the suite has no dev cases to search on",
                               hint="lower eval.holdout in selfimprove.yaml, or add cases")
    say(f"{pid}: base passes {len(base_passed)}/{len(dev)} dev cases")
    best_score, idle = len(base_passed), 0
    waiting: list[tuple[Candidate | Refusal, tuple[str, ...]]] = [
        (c, ()) for c in _first_round(target, ws, relevant(target, base_failed), proposer, options.k,
                                      patterns)]
    pool, waiting = waiting[:options.k], waiting[options.k:]
    try:
        for round_no in range(1, options.rounds + 1):
            if round_no > 1:
                pool = list(_next_round(target, ws, run, proposer, options.k))
                room = max(0, options.k - len(pool))
                pool, waiting = pool + waiting[:room], waiting[room:]
                if not pool:
                    run.stopped = "no new candidate to try"
                    break
            run.rounds = round_no
            for n, (cand, parents) in enumerate(pool, 1):
                label = f"r{round_no}c{n}"
                if isinstance(cand, Refusal):
                    shown = Candidate(cand.reason[:72], "refused", cand.reason, ())
                    run.scored.append(Scored(label, round_no, shown, refused=cand.reason))
                    continue
                checked = vet(cand, ws, memory)
                if isinstance(checked, Refusal):
                    run.scored.append(Scored(label, round_no, cand, refused=checked.reason, parents=parents))
                    continue
                edits, files, new_lines = checked
                _, passed, _, failed, _ = scorer.score(files)
                run.scored.append(Scored(label, round_no, cand, tuple(edits), dict(files), tuple(new_lines),
                                         passed, failed, parents=parents))
                say(f"{pid}: {label} dev {len(passed)}/{len(dev)}  {cand.title[:70]}")
            best = run.best()
            score = len(best.passed) if best else len(base_passed)
            if best is not None and score == len(dev):
                run.stopped = "perfect dev score"
                break
            idle = 0 if score > best_score else idle + 1
            best_score = max(best_score, score)
            if idle >= options.patience:
                run.stopped = f"{idle} rounds without gain"
                break
        else:
            run.stopped = run.stopped or f"{options.rounds} rounds"
    except BudgetExceeded as exc:
        run.stopped = f"budget: {exc.message}"
    return run


def _preflight(settings: Settings, searches: int, options: Options, asks_model: bool,
               budget: Budget | None) -> str:
    """The most a search can call, before the first call: each candidate is one uncached run of the dev
    cases (answers already cached are free, so the real count is usually far lower)."""
    candidates = searches * options.rounds * options.k
    repeats = settings.eval.repeats
    model = f", up to {2 * candidates} model calls (one retry each)" if asks_model else ""
    limit = "" if budget is None or budget.max_calls is None else f"; --max-calls {budget.max_calls}"
    return (f"preflight: {searches} search{'es' if searches != 1 else ''} × up to {options.rounds} rounds × "
            f"{options.k} candidates = at most {candidates} candidates, each one run of the dev cases "
            f"(× {repeats} repeat{'s' if repeats != 1 else ''}, cached answers free){model}{limit}")


def _with_lineage(message: str, lineage: Mapping[str, Any]) -> str:
    """The commit message with the search's lineage before the trailers."""
    body, sep, trailers = message.rstrip("\n").rpartition("\n\n")
    dev = lineage["dev"]
    lines = [f"Search: {lineage['rounds']} round{'s' if lineage['rounds'] != 1 else ''}, "
             f"{len(lineage['candidates'])} candidates; dev {dev['base']}/{dev['cases']} at the base, "
             f"{dev['best']}/{dev['cases']} with this change ({lineage['stopped'] or 'done'})."]
    for c in lineage["candidates"]:
        score = f"refused: {c['refused'][:80]}" if "refused" in c else f"dev {c['dev']}/{dev['cases']}"
        parents = f" from {'+'.join(c['parents'])}" if c.get("parents") else ""
        lines.append(f"- {c['id']}{parents} {c['title'][:60]} ({score})")
    from selfimprove.redact import redact

    block = redact("\n".join(lines))
    return f"{body}\n\n{block}{sep}{trailers}\n"

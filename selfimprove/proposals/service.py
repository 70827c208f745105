"""`propose`: failure patterns in, one checked git branch per proposal out.

Owns the order of things, which is the safety argument (the input, a saved or fresh analysis, is first
checked against schemas/analysis.schema.json and read as `Pattern` records):
  1. the base is a commit (HEAD's by default); every managed file is read from it, never from disk;
  2. per pattern, a branch an earlier run wrote for the same base and pattern is reported, not redone
     (unless its eval note says it failed: then that is reported and the pattern is proposed again);
  3. the run's proposer (`proposers.choose`: offline, or the reflection model) suggests edits of
     mutable sections / pointers, in order of preference;
  4. near-duplicate rules are dropped (against the section and earlier proposals); what remains passes
     `proposals.safety` (items added and removed, redaction markers, injections, contradictions of a
     guardrail, config bounds) and, applied to the base's bytes, `prompts.policy.check` (immutable
     text, protected phrases, caps, schemas), whichever proposer made it. The first candidate that
     passes is written; a refused one gives way to the next (unless an open branch already makes the
     same change: a `Refusal` of kind `Why.PENDING`, and the pattern is being handled); refusals are
     reported under `rejected`;
  5. only then, under the repo lock, one commit on the base and a new branch ref (compare-and-swap).

Must never: write when `dry_run`, touch HEAD / the index / the working tree, or write a candidate the
policy refused. Nothing is written half-way: each branch is one atomic ref update.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfimprove.analysis.records import SCHEMA, Pattern
from selfimprove.errors import SelfImproveError
from selfimprove.proposals import branch as branches
from selfimprove.proposals.dedupe import Memory, near_duplicate, normalise
from selfimprove.proposals.model import Candidate, Edit, Proposal, ProposeResult, Refusal, Rejection, Why
from selfimprove.proposals.proposers import PROPOSERS, choose
from selfimprove.proposals.workspace import Workspace, load_workspace

if TYPE_CHECKING:
    from selfimprove.config import Settings
    from selfimprove.gitrepo import Repo
    from selfimprove.llm import Budget, Completer


# -- input ----------------------------------------------------------------------------------------

def load_analysis(path: Path) -> dict[str, Any]:
    """A saved `analyze --json` document, checked before anything else runs."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SelfImproveError(f"{path} not found",
                               hint="pass the file written by 'selfimprove analyze --json'") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SelfImproveError(f"cannot read {path}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SelfImproveError(f"not valid JSON: {exc.msg}", where=f"{path}:{exc.lineno}",
                               hint="pass the output of 'selfimprove analyze --json'") from None
    check_analysis(doc, str(path))
    return dict(doc)


def check_analysis(doc: Any, source: str) -> None:
    """`doc` against schemas/analysis.schema.json: one line naming the first problem and its JSON path."""
    import jsonschema

    from selfimprove.config import load_schema

    validator = jsonschema.Draft202012Validator(load_schema("analysis.schema.json"))
    errors = sorted(validator.iter_errors(doc),
                    key=lambda e: (len(list(e.absolute_path)), list(map(str, e.absolute_path))))
    if not errors:
        return
    error = errors[0]
    if error.validator == "const":
        message = f"expected schema {SCHEMA!r}, got {error.instance!r}"
    elif error.validator == "required":
        message = str(error.message).replace("is a required property", "is required")
    else:
        message = str(error.message)[:160]
    raise SelfImproveError(f"not an analysis document: {message}", where=f"{source}: {error.json_path}",
                           hint="pass the output of 'selfimprove analyze --json'")


def select_patterns(doc: Mapping[str, Any], pattern: str | None) -> list[Pattern]:
    """The patterns of a checked analysis document (all, or the one `pattern` names by id or #)."""
    patterns = [Pattern.from_json(p) for p in doc.get("patterns") or ()]
    if pattern is None:
        return patterns
    chosen = [p for p in patterns if p.id == pattern]
    if not chosen and pattern.isdigit() and 1 <= int(pattern) <= len(patterns):
        chosen = [patterns[int(pattern) - 1]]  # the rank number of the report's table
    if not chosen:
        known = ", ".join(f"{n} {p.id}" for n, p in enumerate(patterns[:20], 1)) or "none"
        raise SelfImproveError(f"no pattern '{pattern}' in the analysis (patterns: {known})",
                               hint="give the id or the # of a pattern in the 'selfimprove analyze' report")
    return chosen


def fresh_analysis(settings: Settings, *, completer: Completer | None = None,
                   model: str | None = None) -> dict[str, Any]:
    """Analyse the configured traces now (the input when no --from file is given)."""
    if not settings.traces_path:
        raise SelfImproveError("no traces configured to analyse", where=settings.path.name,
                               hint="set traces.path in selfimprove.yaml, or pass --from ANALYSIS.json")
    from selfimprove.analysis import analyze

    path = settings.root / settings.traces_path
    analysis = analyze([path], format=settings.traces_format, completer=completer, model=model)
    doc: dict[str, Any] = analysis.to_json()
    return doc


# -- the run --------------------------------------------------------------------------------------

def propose(settings: Settings, repo: Repo, analysis_doc: Mapping[str, Any], *,
            completer: Completer | None = None, model: str | None = None, pattern: str | None = None,
            max_n: int = 3, dry_run: bool = False, base: str | None = None,
            progress: Callable[[str], None] | None = None, budget: Budget | None = None,
            notice: Callable[[str], None] | None = None) -> ProposeResult:
    """Turn the analysis' top patterns into at most `max_n` proposals (branches unless `dry_run`).

    With a `budget`, every model attempt is taken from it (retries and invalid replies included); the
    run is refused up front when one call per pattern would not fit, and stops, keeping the branches
    already written, when it runs out."""
    check_analysis(analysis_doc, "analysis")
    if max_n < 1:
        raise SelfImproveError(f"--max must be at least 1, got {max_n}")
    patterns = select_patterns(analysis_doc, pattern)
    if base is None and repo.head_sha() is None:
        raise SelfImproveError("the repository has no commits yet", where=str(repo.root),
                               hint="commit your prompts first: proposals are built on a commit")
    base_sha = repo.resolve(base or "HEAD")
    ws = load_workspace(settings, repo, base_sha)
    if model and completer is None:
        from selfimprove.llm import make_completer

        completer = make_completer(model)
    say = progress or (lambda _: None)
    from selfimprove.llm import BudgetExceeded, with_budget

    if completer is None or not model:
        patterns = rules_first(patterns, ws)
    else:
        completer = with_budget(completer, budget)
        if budget is not None:
            wanted = min(max_n, len(patterns))
            limit = "" if budget.max_calls is None else f"; --max-calls {budget.max_calls}"
            tell = notice if budget.limited and notice else say
            tell(f"preflight: at least {wanted} model call{'s' if wanted != 1 else ''} (one per pattern), "
                 f"{2 * wanted} with a retry each{limit}")
            budget.refuse(wanted, None, f"proposing for {wanted} pattern{'s' if wanted != 1 else ''}")
    stopped = ""
    proposer = choose(completer, model)

    proposals: list[Proposal] = []
    rejected: list[Rejection] = []
    tokens_in, tokens_out, cost = 0, 0, 0.0
    guard = contextlib.nullcontext() if dry_run else repo.lock()
    with guard:
        existing = branches.existing_proposals(repo)
        failed = failed_evals(repo, existing)
        # a branch that failed its eval is no proposal in progress: its change may be proposed again
        earlier = [e for e in existing if e.branch not in failed]
        memory = _memory(repo, ws, earlier)
        for pat in patterns:
            if len(proposals) >= max_n:
                break
            pid = pat.id
            done = next((e for e in earlier if e.base == base_sha and e.pattern == pid), None)
            if done is not None:
                say(f"{pid}: already proposed on {done.branch}")
                proposals.append(_existing(repo, ws, done))
                continue
            say(f"{pid}: proposing ({proposer.name})")
            try:
                proposed = proposer.propose(pat, ws)
            except BudgetExceeded as exc:
                stopped = exc.message
                break
            outcomes = proposed.outcomes
            tokens_in, tokens_out = tokens_in + proposed.input_tokens, tokens_out + proposed.output_tokens
            cost += proposed.cost_usd
            reasons: list[Refusal] = []
            accepted: tuple[Candidate, tuple[tuple[Edit, ...], dict[str, bytes], list[str]]] | None = None
            for outcome in outcomes:
                if isinstance(outcome, Refusal):
                    reasons.append(outcome)
                    continue
                checked = _checked(outcome, ws, memory)
                if isinstance(checked, Refusal):
                    reasons.append(checked)
                    if checked.pending:
                        break
                    continue
                again = _proposal(pat, outcome, checked[0], checked[1], base_sha).branch
                if again in failed:
                    reason = f"{again} failed its eval ({failed[again]})"
                    reasons.append(Refusal(Why.FAILED_EVAL, f"the same change is on {reason}"))
                    rejected.append(Rejection(pid, f"{reason}; proposing again", "eval"))
                    say(f"{pid}: {reason}; proposing again")
                    continue
                accepted = (outcome, checked)
                break
            if accepted is None:
                made_by = next((o.proposer for o in outcomes if isinstance(o, Candidate)), proposer.name)
                rejected.append(Rejection(pid, "; ".join(r.reason for r in reasons), made_by))
                continue
            candidate, checked = accepted
            edits, files, new_lines = checked
            proposal = _proposal(pat, candidate, edits, files, base_sha)
            if dry_run:
                proposal = dataclasses.replace(proposal, status="dry-run", diff=_diff(ws, files))
            else:
                sha = branches.write(repo, proposal, branches.commit_message(proposal, pat))
                proposal = dataclasses.replace(proposal, commit=sha)
            memory.add(new_lines, proposal.branch)
            for edit in edits:
                if edit.pointer is not None:
                    memory.add_value(_value_key(edit), proposal.branch)
            proposals.append(proposal)
    if budget is not None and completer is not None:  # every attempt, invalid replies included
        tokens_in, tokens_out, cost = budget.input_tokens, budget.output_tokens, budget.cost_usd
    return ProposeResult(base=base_sha, dry_run=dry_run, proposals=tuple(proposals), rejected=tuple(rejected),
                         input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost,
                         calls=budget.calls if budget is not None else 0, stopped=stopped)


def rules_first(patterns: Sequence[Pattern], ws: Workspace) -> list[Pattern]:
    """The patterns whose best offline fix is a rule or a config change before those that would only
    get worked examples, each group in its ranked order: with `--max N`, a rule that names a failing
    tool and its fix is worth more than examples of similar requests handled well."""
    offline = PROPOSERS["offline"](None, None)

    def examples_only(pattern: Pattern) -> bool:
        first = next(iter(offline.propose(pattern, ws).candidates()), None)
        return first is not None and first.proposer == "offline/demonstrations"

    return sorted(patterns, key=examples_only)


def added_lines(edit: Edit) -> tuple[list[str], list[str]]:
    """New rules, and other new non-blank lines, of a section edit (a second copy of a line is new)."""
    from collections import Counter

    from selfimprove.prompts.sections import rules

    old_rules = Counter(normalise(r) for r in rules(edit.before))
    new_rules: list[str] = []
    for rule in rules(edit.after):
        key = normalise(rule)
        if old_rules[key] > 0:
            old_rules[key] -= 1
        else:
            new_rules.append(rule)
    keys = {normalise(r) for r in new_rules}
    old_lines = Counter(line.strip() for line in edit.before.splitlines())
    other: list[str] = []
    for line in (raw.strip() for raw in edit.after.splitlines()):
        if not line:
            continue
        if old_lines[line] > 0:
            old_lines[line] -= 1
        elif normalise(line) not in keys:
            other.append(line)
    return new_rules, other


def _value_key(edit: Edit) -> str:
    return f"{edit.path}#{edit.pointer}={edit.after}"


def vet(candidate: Candidate, ws: Workspace,
        memory: Memory) -> tuple[tuple[Edit, ...], dict[str, bytes], list[str]] | Refusal:
    """Every check a candidate passes before it may become a branch, whichever proposer (or search round)
    made it: its edits without what was proposed before, their files and new lines; or a refusal."""
    return _checked(candidate, ws, memory)


def _checked(candidate: Candidate, ws: Workspace,
             memory: Memory) -> tuple[tuple[Edit, ...], dict[str, bytes], list[str]] | Refusal:
    """The candidate's edits without what was proposed before, their files and new lines; or a refusal."""
    from selfimprove.prompts.policy import check
    from selfimprove.prompts.sections import rules
    from selfimprove.proposals.safety import refusal

    edits: list[Edit] = []
    repeats: list[str] = []
    elsewhere = False  # a repeat of what another branch proposes: the pattern is being handled there
    new_lines: list[str] = []
    for edit in candidate.edits:
        if edit.section is None:
            earlier_branch = memory.values.get(_value_key(edit))
            if earlier_branch is not None:
                repeats.append(f"{edit.pointer} of {edit.path} = {edit.after} was proposed on "
                               f"{earlier_branch}")
                elsewhere = True
            else:
                edits.append(edit)
            continue
        added, other = added_lines(edit)
        kept = [r for r in rules(edit.before) if normalise(r) in {normalise(x) for x in rules(edit.after)}]
        after = edit.after
        fresh: list[str] = []
        for rule in added:
            same = near_duplicate(rule, kept + fresh)
            earlier = memory.find(rule)
            if same is not None:
                where, text = f"a rule already in section '{edit.section}'", same
            elif earlier is not None:
                where, text = f"a rule proposed on {earlier[1]}", earlier[0]
                elsewhere = True
            else:
                fresh.append(rule)
                continue
            same_text = normalise(text) == normalise(rule)
            repeats.append(f'near-duplicate rule "{_short(rule)}" repeats {where}'
                           + ("" if same_text else f' ("{_short(text)}")'))
            after = _without_rule(after, rule)
        seen = [memory.find(line) for line in other]
        if other and all(seen) and not fresh:
            branch = next(found[1] for found in seen if found)
            repeats.append(f"the new text of section '{edit.section}' was already proposed on {branch}")
            elsewhere = True
            continue
        if after != edit.before:
            edits.append(Edit(edit.path, edit.section, None, edit.before, after))
            new_lines += fresh + other
    if not edits:
        if not repeats:
            return Refusal(Why.UNCHANGED, "the proposal changes nothing")
        reason = "; ".join(repeats) + ", not added again"
        return Refusal(Why.PENDING if elsewhere else Why.UNCHANGED, reason)

    files = ws.apply(edits)
    if not files:
        return Refusal(Why.UNCHANGED, "the proposal changes nothing")
    unsafe = refusal(edits, ws)
    if unsafe:
        return Refusal(Why.UNSAFE, unsafe)
    violations = check(ws.settings.policy, ws.settings, dict(ws.before), {**ws.before, **files})
    if violations:
        return Refusal(Why.POLICY, "refused by policy: " + "; ".join(
            f"{v.kind}: {v.message} ({v.path}{f':{v.line}' if v.line else ''})" for v in violations
        ))
    return tuple(edits), files, new_lines


def _without_rule(body: str, rule: str) -> str:
    lines = body.splitlines(keepends=True)
    for i in range(len(lines) - 1, -1, -1):
        if normalise(lines[i]) == normalise(rule):
            return "".join(lines[:i] + lines[i + 1 :])
    return body


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _proposal(pattern: Pattern, candidate: Candidate, edits: tuple[Edit, ...],
              files: Mapping[str, bytes], base: str) -> Proposal:
    pid = pattern.id
    from selfimprove.proposals.safety import removed_items

    removed = tuple(removed_items(edits))
    title = candidate.title
    if removed:  # a removal or a rewrite is never hidden behind "add a rule"
        title = f"{title}; removes or rewrites \u201c{_short(removed[0], 40)}\u201d" + (
            f" and {len(removed) - 1} more" if len(removed) > 1 else "")
    slug = branches.slugify(candidate.title)
    return Proposal(
        pattern=pid, title=title, slug=slug, removed=removed, proposer=candidate.proposer,
        rationale=candidate.rationale, evidence=pattern.evidence, files=dict(files), edits=edits,
        base=base, branch=branches.branch_name(slug, base, pid, files), commit=None, status="created",
        input_tokens=candidate.input_tokens, output_tokens=candidate.output_tokens,
        cost_usd=candidate.cost_usd,
    )


def failed_evals(repo: Repo, earlier: Sequence[branches.Existing]) -> dict[str, str]:
    """Branches whose tip carries an eval note with a verdict other than pass: branch → the note's reasons."""
    out: dict[str, str] = {}
    for done in earlier:
        text = repo.note_read(done.sha)
        if not text:
            continue
        try:
            note = json.loads(text)
        except ValueError:
            continue
        if isinstance(note, Mapping) and note.get("verdict") not in (None, "pass"):
            reasons = [str(r) for r in note.get("reasons") or ()][:2]
            said = ": " + "; ".join(reasons) if reasons else ""
            out[done.branch] = f"verdict {note.get('verdict')}{said}"
    return out


def _existing(repo: Repo, ws: Workspace, done: branches.Existing) -> Proposal:
    files: dict[str, bytes] = {}
    for path in ws.before:
        data = repo.read_at(done.sha, path)
        if data is not None and data != ws.before[path]:
            files[path] = data
    title = done.subject.removeprefix("selfimprove:").strip()
    return Proposal(pattern=done.pattern, title=title, slug="", proposer=done.proposer,
                    rationale=done.rationale, evidence=None, files=files, base=done.base, branch=done.branch,
                    commit=done.sha, status="exists")


def _memory(repo: Repo, ws: Workspace, earlier: Sequence[branches.Existing]) -> Memory:
    """What other selfimprove branches add to the base's mutable sections and pointers."""
    memory = Memory()
    for done in earlier:
        lines, values = _branch_changes(repo, ws, done)
        memory.add(lines, done.branch)
        for key in values:
            memory.add_value(key, done.branch)
    return memory


def _branch_changes(repo: Repo, ws: Workspace, done: branches.Existing) -> tuple[list[str], list[str]]:
    """Lines a branch adds to mutable sections, and "path#pointer=value" it sets, relative to the base."""
    from selfimprove.prompts.sections import parse_prompt
    from selfimprove.prompts.structured import get_pointer, load_structured

    lines: list[str] = []
    values: list[str] = []
    def changed(path: str, parse: Callable[[str, str], Any]) -> Any:
        """The branch's parsed version of `path` when it differs from the base and parses, else None."""
        data = repo.read_at(done.sha, path)
        if data is None or data == ws.before.get(path):
            return None
        try:
            return parse(data.decode("utf-8"), path)
        except (SelfImproveError, UnicodeDecodeError):
            return None

    for path, doc in ws.prompts.items():
        other = changed(path, parse_prompt)
        if other is None:
            continue
        for section in other.sections.values():
            base_section = doc.sections.get(section.id)
            if section.mutable and base_section is not None and base_section.body != section.body:
                added, text = added_lines(Edit(path, section.id, None, base_section.body, section.body))
                lines += added + text
    for path, cfg in ws.configs.items():
        theirs = changed(path, load_structured)
        if theirs is None:
            continue
        for pointer in cfg.spec.mutable:
            try:
                value = get_pointer(theirs, pointer)
            except Exception:  # the branch removed or never had it: nothing to compare
                continue
            try:
                mine = get_pointer(cfg.data, pointer)
            except Exception:
                mine = None
            if value != mine:
                values.append(f"{path}#{pointer}={json.dumps(value)}")
    return lines, values


def _diff(ws: Workspace, files: Mapping[str, bytes]) -> str:
    out: list[str] = []
    for path in sorted(files):
        old = (ws.before.get(path) or b"").decode("utf-8").splitlines(keepends=True)
        new = files[path].decode("utf-8").splitlines(keepends=True)
        for line in difflib.unified_diff(old, new, f"a/{path}", f"b/{path}"):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)

"""`run_eval`: the suite on base and candidate, through one provider, then the gate and the git note.

Owns: choosing the two commits (candidate: the current branch; base: `--base`, else the candidate's
`Selfimprove-Base` trailer, else its merge-base with the default branch), reading every prompt, suite
and structured config file from git objects at those commits, the policy check between them, the cost
estimate printed before any call (and `--max-cost`), running every (case, repeat, side) call
concurrently under a limit, with the on-disk cache and in-run de-duplication, grading, the gate, and
the note on the candidate.

Must never: read prompt, suite or config files from the working tree, or write to it, the index or HEAD (the
only writes are the cache under `.selfimprove/cache/` and the note under `refs/notes/selfimprove`);
make a call when the policy already refuses the candidate; or decide a verdict from an incomplete run —
a call that fails after its retries stops the run with one clear line (answers already received stay
cached, so re-running resumes).

Identical requests share one answer: when a prompt change does not touch what a case sends, base and
candidate ask once (the answer is the same cache entry either way). A provider that sees configs (an
`exec:` harness) gets each side's parsed structured configs with every case, and they are part of
that request: a config-only change re-asks the candidate and reuses the base's answers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from selfimprove.errors import SelfImproveError
from selfimprove.evals.assertions import (
    JUDGE_SCHEMA,
    Grade,
    Output,
    Verdict,
    grade,
    judge_messages,
    parse_verdict,
)
from selfimprove.evals.cache import CACHE_DIR, Cache, cache_key
from selfimprove.evals.gate import CaseOutcome, GateResult, decide, refuse_policy
from selfimprove.evals.providers import Provider, make_provider
from selfimprove.evals.suite import (
    Assertion,
    Case,
    Source,
    Suite,
    load_suite,
    render_messages,
    split_prompts,
    suite_files_at,
)

if TYPE_CHECKING:
    from selfimprove.config import Settings
    from selfimprove.gitrepo import Repo
    from selfimprove.llm import Budget, Completer
    from selfimprove.prompts.policy import Violation

SCHEMA = "selfimprove.eval/v1"
SIDES = ("base", "candidate")
_OUTPUT_CHARS = 600  # outputs kept per flipped case in the JSON document and the note
_DEFAULT_OUTPUT_TOKENS = 256  # for the cost estimate when the suite sets no max_tokens
_JUDGE_TOKENS = (400, 60)


@dataclass(frozen=True)
class Side:
    ref: str
    sha: str


@dataclass(frozen=True)
class Trial:
    repeat: int
    output: Output
    grade: Grade
    cached: bool


@dataclass(frozen=True)
class CaseResult:
    case: Case
    base: tuple[Trial, ...]
    candidate: tuple[Trial, ...]

    def outcome(self) -> CaseOutcome:
        return CaseOutcome(self.case.id, self.case.tags, len(self.base),
                           sum(t.grade.passed for t in self.base),
                           sum(t.grade.passed for t in self.candidate))


@dataclass
class Usage:
    made: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, output: Output) -> None:
        self.made += 1
        self.input_tokens += output.input_tokens
        self.output_tokens += output.output_tokens
        self.cost_usd += output.cost_usd


@dataclass(frozen=True)
class EvalResult:
    base: Side
    candidate: Side
    model: str
    repeats: int
    alpha: float
    gate: GateResult
    cases: tuple[CaseResult, ...] = ()
    violations: tuple[Violation, ...] = ()
    usage: Usage = field(default_factory=Usage)
    estimate_usd: float | None = None
    diff: str = ""
    holdout: float = 0.0  # the split's share; the gate judged the held-out cases when above 0
    split: Mapping[str, Any] | None = None  # dev and held-out pass rates, and the gap between them
    skipped: tuple[str, ...] = ()  # unsupported suite items left out (--skip-unsupported)

    @property
    def verdict(self) -> str:
        return self.gate.verdict

    def flipped(self) -> list[tuple[str, CaseResult]]:
        by_id = {r.case.id: r for r in self.cases}
        return ([("regressed", by_id[i]) for i in self.gate.regressed]
                + [("fixed", by_id[i]) for i in self.gate.fixed])

    def to_json(self) -> dict[str, Any]:
        gate = self.gate

        def side(s: Side, rate: float | None) -> dict[str, Any]:
            return {"ref": s.ref, "sha": s.sha, "pass_rate": None if rate is None else round(rate, 6)}

        def trials(ts: Sequence[Trial]) -> dict[str, Any]:
            last = ts[-1] if ts else None
            return {
                "pass_rate": round(sum(t.grade.passed for t in ts) / len(ts), 6) if ts else None,
                "output": last.output.text[:_OUTPUT_CHARS] if last else None,
                "failures": last.grade.failures if last else [],
            }

        return {
            "schema": SCHEMA,
            "verdict": gate.verdict,
            "reasons": list(gate.reasons),
            "base": side(self.base, gate.base_rate),
            "candidate": side(self.candidate, gate.candidate_rate),
            "regressed": list(gate.regressed),
            "fixed": list(gate.fixed),
            "p_value": None if gate.p_value is None else round(gate.p_value, 6),
            "ci": None if gate.ci is None else [round(gate.ci[0], 6), round(gate.ci[1], 6)],
            "alpha": self.alpha,
            "slices": {tag: s.to_json() for tag, s in gate.slices.items()},
            "calls": {"made": self.usage.made, "cached": self.usage.cached},
            "tokens": {"input": self.usage.input_tokens, "output": self.usage.output_tokens},
            "cost_usd": round(self.usage.cost_usd, 6),
            "model": self.model,
            "repeats": self.repeats,
            "cases": len(self.cases),
            "violations": [v.to_json() for v in self.violations],
            **({"split": dict(self.split)} if self.split is not None else {}),
            "skipped": list(self.skipped),
            "flipped": [
                {"id": r.case.id, "status": status, "description": r.case.description, "where": r.case.where,
                 "base": trials(r.base), "candidate": trials(r.candidate)}
                for status, r in self.flipped()
            ],
        }


# -- choosing commits -------------------------------------------------------------------------------

def choose_commits(repo: Repo, candidate: str | None, base: str | None) -> tuple[Side, Side]:
    """(base, candidate) as DESIGN §6 and issue 5 define the defaults."""
    if candidate is None:
        candidate = repo.current_branch() or "HEAD"
    cand_sha = repo.resolve(candidate)
    if base is None:
        commits = repo.log(cand_sha, max_count=1)
        trailer = commits[0].trailers.get("Selfimprove-Base", ()) if commits else ()
        if trailer:
            base = trailer[0]
            if repo.try_resolve(base) is None:
                raise SelfImproveError(f"the Selfimprove-Base trailer of {candidate} names {base!r}, "
                                       "which is not in this repository", hint="pass --base REF")
        else:
            default = repo.default_branch()
            merge_base = repo.merge_base(default, cand_sha) if repo.try_resolve(default) else None
            if merge_base is None:
                raise SelfImproveError(f"{candidate} has no merge-base with {default}",
                                       hint="pass --base REF")
            if merge_base == cand_sha:  # the candidate is already merged: compare with the branch tip
                base = default
            elif merge_base == repo.try_resolve(default):
                base = default
            else:
                base = merge_base
    base_sha = repo.resolve(base)
    if base_sha == cand_sha:
        raise SelfImproveError(f"base and candidate are the same commit ({cand_sha[:12]})",
                               hint="eval a proposal branch (selfimprove eval BRANCH) or pass --base REF")
    return Side(base, base_sha), Side(candidate, cand_sha)


def _read_managed(repo: Repo, sha: str, paths: Sequence[str]) -> dict[str, bytes | None]:
    return {p: repo.read_at(sha, p) for p in paths}


# -- the run ----------------------------------------------------------------------------------------

class _Prompts:
    """Prompt text at a commit: a managed prompt file with its markers stripped (selfimprove's system
    prompt, or a promptfoo prompt file inside the repo), or a case's inline promptfoo template."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self._memo: dict[tuple[str, str], str] = {}

    def system(self, side: Side, path: str, where: str) -> str:
        key = (side.sha, path)
        if key not in self._memo:
            from selfimprove.prompts.sections import parse_prompt

            data = self.repo.read_at(side.sha, path)
            if data is None:
                from selfimprove.config import missing_at_commit

                raise missing_at_commit(path, root=self.repo.root, ref=f"{side.ref} ({side.sha[:12]})",
                                        known=self.repo.list_at(side.sha), where=where, role="prompt")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise SelfImproveError(f"prompt {path} at {side.ref} is not UTF-8 text") from None
            self._memo[key] = parse_prompt(text, path).render()
        return self._memo[key]

    def text(self, side: Side, case: Case) -> str:
        if case.template is not None:
            return case.template
        if case.template_file is None:
            return self.system(side, case.prompt or "", case.where)
        parts = split_prompts(self.system(side, case.template_file, case.where), case.template_file)
        if case.template_index >= len(parts):
            raise SelfImproveError(f"prompt {case.template_file} at {side.ref} has {len(parts)} prompts, "
                                   f"not {case.template_index + 1}", where=case.where,
                                   hint="a '---' line separates prompts in a .txt prompt file")
        return parts[case.template_index]


def _configs_at(repo: Repo, settings: Settings, side: Side) -> dict[str, Any]:
    """Every structured config of selfimprove.yaml, parsed as it is at `side` (None when absent there)."""
    from selfimprove.prompts.structured import load_structured

    configs: dict[str, Any] = {}
    for spec in settings.configs:
        data = repo.read_at(side.sha, spec.path)
        if data is None:
            configs[spec.path] = None
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SelfImproveError(f"config {spec.path} at {side.ref} ({side.sha[:12]}) is not UTF-8 text",
                                   where=spec.path, hint="save the file as UTF-8") from None
        try:
            configs[spec.path] = load_structured(text, spec.path)
        except SelfImproveError as exc:  # say which side's version is broken
            raise SelfImproveError(f"{exc.message} (config at {side.ref}, {side.sha[:12]})", where=exc.where,
                                   hint=exc.hint) from None
    return configs


@dataclass(frozen=True)
class _Job:
    case: Case
    side: str
    repeat: int
    messages: list[dict[str, Any]]
    params: Mapping[str, Any]
    key: str
    configs: Mapping[str, Any] | None = None  # only for providers that see them
    model: str = ""  # the provider answering this job (the suite's, --model, or eval.model)


class _Stopped(Exception):
    """A call not started because another one already failed."""


class _Engine:
    """Runs calls with a concurrency limit, the cache and in-run de-duplication; counts usage."""

    def __init__(self, cache: Cache, concurrency: int, usage: Usage) -> None:
        self.cache = cache
        self.semaphore = asyncio.Semaphore(concurrency)
        self.usage = usage
        self._pending: dict[str, asyncio.Future[Output]] = {}
        self.failure: BaseException | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfimprove-cache")
        self._writes: list[asyncio.Future[None]] = []

    async def flush(self) -> None:
        """Wait for every cache write; one that failed (disk full, permissions) is a clear error."""
        try:
            await asyncio.gather(*self._writes)
        except OSError as exc:
            raise SelfImproveError(f"cannot write the eval cache: {exc}", where=str(self.cache.directory),
                                   hint="check the disk and its permissions, or use --no-cache") from None
        finally:
            self._writer.shutdown(wait=True)

    async def answer(self, key: str, call: Callable[[], Awaitable[Output]]) -> tuple[Output, bool]:
        """The answer for `key`: from the cache, from an identical call in flight, or a new call."""
        if key in self._pending:
            self.usage.cached += 1
            return await asyncio.shield(self._pending[key]), True
        hit = self.cache.get(key)
        if hit is not None:
            self.usage.cached += 1
            return hit, True
        future: asyncio.Future[Output] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            async with self.semaphore:
                if self.failure is not None:  # stop starting calls; those in flight finish and are cached
                    raise _Stopped()
                output = await call()
        except BaseException as exc:
            if self.failure is None and not isinstance(exc, _Stopped):
                self.failure = exc
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        self.usage.add(output)
        # only answers are stored, never errors; files are written by a thread so the loop keeps calling
        loop = asyncio.get_running_loop()
        self._writes.append(loop.run_in_executor(self._writer, self.cache.put, key, output))
        future.set_result(output)
        return output, False


_JudgeFn = Callable[[Assertion, Output, Sequence[Mapping[str, Any]]], Awaitable[Verdict]]
_Reader = Callable[[str], bytes | None]


def _judge_for(engine: _Engine, completer: Completer, default_model: str | None, repeat: int) -> _JudgeFn:
    async def judge(assertion: Assertion, output: Output, messages: Sequence[Mapping[str, Any]]) -> Verdict:
        from selfimprove.llm import parse_json

        model = assertion.provider or default_model
        if model is None or model.startswith("exec:"):
            return Verdict(None, 0.0, "no judge model configured (eval.judge_model)")
        judge_completer = completer
        asked = judge_messages(str(assertion.value), output, messages)
        problem = ""
        for attempt in range(2):  # one retry with the problem spelled out, as complete_json does

            async def call(msgs: list[dict[str, Any]] = asked) -> Output:
                completion = await judge_completer.acomplete(model, msgs, temperature=0)
                return Output(text=completion.text, input_tokens=completion.input_tokens,
                              output_tokens=completion.output_tokens, cost_usd=completion.cost_usd)

            key = cache_key(f"judge:{model}", {"messages": asked, "params": {"temperature": 0}}, repeat)
            reply, _ = await engine.answer(key, call)
            try:
                return parse_verdict(parse_json(reply.text, JUDGE_SCHEMA))
            except ValueError as exc:
                problem = str(exc)
            if attempt == 0:
                asked = [*asked, {"role": "assistant", "content": reply.text},
                         {"role": "user", "content": f"That reply is not valid: {problem}. Answer again "
                                                     "with only the JSON object."}]
        return Verdict(None, 0.0, f"unparsable judge reply ({problem})")

    return judge


def _estimate(jobs: Sequence[_Job], cache: Cache) -> tuple[int, int, float | None]:
    """(calls to make, calls cached, estimated USD or None when the price is unknown)."""
    todo: dict[str, _Job] = {}
    cached = 0
    for job in jobs:
        if job.key in todo:
            cached += 1
        elif cache.get(job.key) is not None:
            cached += 1
        else:
            todo[job.key] = job
    if not todo:
        return 0, cached, 0.0  # nothing to ask: no need to load price tables
    if any(j.model.startswith("exec:") for j in todo.values()):
        return len(todo), cached, None
    from selfimprove.llm import estimate_cost

    total = 0.0
    for model in sorted({j.model for j in todo.values()}):
        mine = [j for j in todo.values() if j.model == model]
        input_tokens = sum(len(json.dumps(j.messages, ensure_ascii=False, default=str)) // 4 for j in mine)
        output_tokens = sum(int(j.params.get("max_tokens") or _DEFAULT_OUTPUT_TOKENS) for j in mine)
        cost = estimate_cost(model, input_tokens, output_tokens)
        if cost is None:
            return len(todo), cached, None
        total += cost
    return len(todo), cached, total


def run_eval(
    settings: Settings,
    repo: Repo,
    *,
    candidate: str | None,
    base: str | None,
    model: str | None = None,
    repeat: int | None = None,
    concurrency: int | None = None,
    use_cache: bool = True,
    max_cost: float | None = None,
    completer: Completer | None = None,
    progress: Callable[[int, int], None] | None = None,
    notice: Callable[[str], None] | None = None,
    write_note: bool = True,
    allow_no_effect: bool = False,
    cases: str = "auto",
    budget: Budget | None = None,
    suite_path: str | None = None,
    skip_unsupported: bool = False,
) -> EvalResult:
    """Evaluate `candidate` against `base` and apply the gate; the verdict is also noted on the candidate.

    `cases`: "auto" runs every case and, when `eval.holdout` sets a split, gates on the held-out ones
    (the dev → held-out gap is reported); "dev" runs the dev cases only (what a search may see); "all"
    gates on every case. `budget` is charged for every call made (cached answers are free).
    `suite_path` (`--suite`) replaces eval.suite: a path inside the repo is read at the candidate
    commit like eval.suite; a file that is not committed there (or lies outside the repo) is read from
    disk, and so are the files it names outside the repo."""
    spec = settings.eval
    override = model
    if not (suite_path or spec.suite):
        raise SelfImproveError("no eval suite configured", where=str(settings.path.name),
                               hint="set eval.suite in selfimprove.yaml (a YAML/JSONL file or a directory), "
                                    "or pass --suite FILE")
    repeats = repeat if repeat is not None else spec.repeats
    limit = concurrency if concurrency is not None else spec.concurrency
    if repeats < 1:
        raise SelfImproveError(f"--repeat must be at least 1, got {repeats}")
    if limit < 1:
        raise SelfImproveError(f"--concurrency must be at least 1, got {limit}")
    say = notice or (lambda text: None)

    base_side, cand_side = choose_commits(repo, candidate, base)
    suite = _load(settings, repo, cand_side, suite_path, override, skip_unsupported)
    models = sorted({override or c.provider or spec.model or "" for c in suite.cases})
    if "" in models:
        raise SelfImproveError("no model configured for eval",
                               hint="set eval.model in selfimprove.yaml, 'providers:' in the suite, or pass "
                                    "--model (a litellm model string, or exec:COMMAND)")
    model = ", ".join(models)
    for line in suite.skipped:
        say(f"skipped (unsupported): {line}")
    if suite.template_files:  # promptfoo prompt files in the repo are managed prompts too
        settings = replace(settings, prompts=tuple(dict.fromkeys([*settings.prompts, *suite.template_files])))
    managed = settings.managed_paths()

    from selfimprove.prompts.policy import check

    violations = check(settings.policy, settings, _read_managed(repo, base_side.sha, managed),
                       _read_managed(repo, cand_side.sha, managed))
    diff = repo.diff(base_side.sha, cand_side.sha, managed) if managed else ""
    if violations:
        result = EvalResult(base_side, cand_side, model, repeats, spec.gate.alpha, refuse_policy(violations),
                            violations=tuple(violations), diff=diff, skipped=suite.skipped)
        if write_note:
            repo.note_add(cand_side.sha, json.dumps(result.to_json(), ensure_ascii=False))
        return result

    from selfimprove.evals.split import split

    dev_cases, held_cases = split(suite.cases, spec.holdout)
    chosen = dev_cases if cases == "dev" else list(suite.cases)
    gated = {c.id for c in (held_cases if cases == "auto" and spec.holdout > 0 and held_cases else chosen)}

    def model_of(case: Case) -> str:
        return override or case.provider or spec.model or ""

    if completer is None and spec.router is not None:  # every model call through the shared Router
        from selfimprove.llm import RouterCompleter

        completer = RouterCompleter(spec.router, timeout=spec.timeout)
    judges = {m: spec.judge_model or (None if m.startswith("exec:") else m) for m in models}
    for m in models:
        _require_judge(Suite(tuple(c for c in suite.cases if model_of(c) == m), suite.files), judges[m])
    providers = {m: make_provider(m, root=settings.root, timeout=spec.timeout, completer=completer,
                                  budget=budget)
                 for m in models}
    prompts = _Prompts(repo)
    sides = (("base", base_side), ("candidate", cand_side))
    configs: dict[str, dict[str, Any] | None] = {
        name: _configs_at(repo, settings, side) if any(p.sees_configs for p in providers.values()) else None
        for name, side in sides}
    jobs = []
    for case in chosen:
        provider = providers[model_of(case)]
        for name, side in sides:
            messages = render_messages(case, prompts.text(side, case))
            seen = configs[name] if provider.sees_configs else None
            request = provider.request(messages, case.vars, case.config, seen)
            for r in range(repeats):
                key = cache_key(provider.name, request, r)
                jobs.append(_Job(case, name, r, messages, dict(case.config), key, seen, model_of(case)))

    cache = Cache(settings.root / CACHE_DIR, enabled=use_cache)
    todo, cached, estimate = _estimate(jobs, cache)
    price = "unknown (no price for this model)" if estimate is None else f"${estimate:.4f}"
    say(f"{len(chosen)} cases × {repeats} repeat{'s' if repeats != 1 else ''} × base and candidate: "
        f"{todo} calls to make, {cached} cached; estimated cost {price}")
    if max_cost is not None and estimate is not None and estimate > max_cost:
        raise SelfImproveError(f"estimated cost ${estimate:.4f} is above --max-cost ${max_cost:.4f}",
                               hint="lower --repeat, use a cheaper model, or raise --max-cost")
    if budget is not None:
        budget.refuse(todo, estimate, f"this eval ({len(chosen)} cases)")

    usage = Usage()
    trials = asyncio.run(_run_jobs(jobs, providers, cache, usage, limit, completer, judges, spec.timeout,
                                   progress, budget))
    results = []
    for case in chosen:
        by_side = {name: tuple(sorted(trials.get((case.id, name), []), key=lambda t: t.repeat))
                   for name in SIDES}
        results.append(CaseResult(case, by_side["base"], by_side["candidate"]))
    gate = decide([r.outcome() for r in results if r.case.id in gated], spec.gate,
                  allow_no_effect=allow_no_effect)
    report = _split_report(results, gated, spec.holdout) if cases == "auto" and spec.holdout > 0 else None
    result = EvalResult(base_side, cand_side, model, repeats, spec.gate.alpha, gate, tuple(results),
                        usage=usage, estimate_usd=estimate, diff=diff, holdout=spec.holdout, split=report,
                        skipped=suite.skipped)
    if write_note:
        repo.note_add(cand_side.sha, json.dumps(result.to_json(), ensure_ascii=False))
    return result


def _split_report(results: Sequence[CaseResult], held: set[str], share: float) -> dict[str, Any]:
    """Pass rates on dev and held-out, and the gap: a gain on dev that held-out does not show was fitted."""

    def rates(rows: list[CaseResult]) -> dict[str, Any]:
        def rate(side: str) -> float | None:
            trials = [t for r in rows for t in getattr(r, side)]
            return round(sum(t.grade.passed for t in trials) / len(trials), 6) if trials else None

        base, cand = rate("base"), rate("candidate")
        gain = None if base is None or cand is None else round(cand - base, 6)
        return {"cases": len(rows), "base": base, "candidate": cand, "gain": gain}

    dev = rates([r for r in results if r.case.id not in held])
    out = rates([r for r in results if r.case.id in held])
    gap = None if dev["gain"] is None or out["gain"] is None else round(dev["gain"] - out["gain"], 6)
    return {"holdout": share, "dev": dev, "held_out": out, "gap": gap}


def _load(settings: Settings, repo: Repo, side: Side, suite_path: str | None, model: str | None,
          skip_unsupported: bool) -> Suite:
    """The suite at the candidate commit (or, for `--suite` naming a file not committed there, on disk)."""
    from pathlib import Path

    root = settings.root.resolve()

    def read(path: str) -> bytes | None:
        if path.startswith("/"):
            try:
                return Path(path).read_bytes()
            except OSError:
                return None
        return repo.read_at(side.sha, path)

    def listing(directory: str) -> list[str]:
        if directory.startswith("/"):
            return sorted(p.as_posix() for p in Path(directory).rglob("*") if p.is_file())
        return repo.list_at(side.sha, directory)

    source = Source(read=read, root=root.as_posix(), skip_unsupported=skip_unsupported, model=model,
                    tools=_settings_tools(settings, read), files=listing)
    default_prompt = settings.prompts[0] if settings.prompts else None
    if suite_path is None:
        assert settings.eval.suite is not None
        return load_suite(suite_files_at(repo, side.sha, settings.eval.suite), default_prompt=default_prompt,
                          source=source)
    full = Path(suite_path).expanduser()
    if not full.is_absolute() and not full.exists():  # not found from here: a path inside the repo
        full = root / full
    full = full.resolve()
    inside = full.is_relative_to(root)
    relative = full.relative_to(root).as_posix() if inside else None
    if relative is not None and (repo.read_at(side.sha, relative) is not None or not full.exists()):
        files = suite_files_at(repo, side.sha, relative)
        return load_suite(files, default_prompt=default_prompt, source=source)
    try:
        data = full.read_bytes()
    except OSError as exc:
        raise SelfImproveError(f"cannot read the suite {suite_path}: {exc.strerror or exc}",
                               hint="pass --suite a YAML or JSONL suite file") from None
    return load_suite({relative or full.as_posix(): data}, default_prompt=default_prompt, source=source)


def _settings_tools(settings: Settings, read: _Reader) -> tuple[Mapping[str, Any], ...]:
    """eval.tools of selfimprove.yaml: inline, or a `file://` JSON/YAML file read at the candidate commit."""
    from selfimprove.evals.promptfoo import openai_tools

    raw = settings.eval.tools
    if raw is None:
        return ()
    if not isinstance(raw, str):
        return tuple(openai_tools(raw))
    doc = Source(read=read).document(raw, "selfimprove.yaml", settings.path.name)
    if not isinstance(doc, list) or not all(isinstance(t, Mapping) for t in doc):
        raise SelfImproveError(f"eval.tools {raw} must hold a list of OpenAI function schemas",
                               where=settings.path.name, hint="see 'Eval suites' in the README")
    return tuple(openai_tools(doc))


def _require_judge(suite: Suite, judge_model: str | None) -> None:
    if judge_model is not None:
        return
    for case in suite.cases:
        for assertion in case.asserts:
            if assertion.base_type == "llm-rubric" and not assertion.provider:
                raise SelfImproveError("llm-rubric needs a judge model, and an exec: provider cannot judge",
                                       where=case.where,
                                       hint="set eval.judge_model in selfimprove.yaml, or 'provider:' on "
                                            "the assertion")


async def _run_jobs(jobs: Sequence[_Job], providers: Mapping[str, Provider], cache: Cache, usage: Usage,
                    limit: int, completer: Completer | None, judges: Mapping[str, str | None], timeout: float,
                    progress: Callable[[int, int], None] | None,
                    budget: Budget | None = None) -> dict[tuple[str, str], list[Trial]]:
    from selfimprove.llm import with_budget

    engine = _Engine(cache, limit, usage)
    if completer is not None:
        judge_completer: Completer = with_budget(completer, budget)
    else:
        from selfimprove.llm import LiteLLMCompleter

        judge_completer = LiteLLMCompleter(timeout=timeout, budget=budget)
    results: dict[tuple[str, str], list[Trial]] = {}
    done = 0
    if progress:
        progress(0, len(jobs))

    async def one(job: _Job) -> None:
        nonlocal done

        async def call() -> Output:
            provider = providers[job.model]
            if budget is not None and not provider.charged:
                budget.take("eval call")
            started = time.perf_counter()
            output = await provider.call(job.messages, job.case.vars, job.params, job.configs)
            if budget is not None and not provider.charged:
                budget.spend(output.input_tokens, output.output_tokens, output.cost_usd)
            return replace(output, latency_ms=(time.perf_counter() - started) * 1000)

        output, was_cached = await engine.answer(job.key, call)
        judge = _judge_for(engine, judge_completer, judges[job.model], job.repeat)
        graded = await grade(job.case, output, job.messages, judge)
        results.setdefault((job.case.id, job.side), []).append(Trial(job.repeat, output, graded, was_cached))
        done += 1
        if progress:
            progress(done, len(jobs))

    try:
        outcomes = await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)
    finally:
        await engine.flush()
    if engine.failure is not None:
        raise engine.failure
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return results

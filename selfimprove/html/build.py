"""Build the pages from a run: the analyze page with its samples, and `selfimprove report DIR`.

`report` writes three linked pages into DIR, offline (no model is ever called):
  - analyze.html: `analyze` of the given trace paths, else traces.path of selfimprove.yaml;
  - eval.html: the stored eval result (the git note) of the newest evaluated proposal, with the diff
    of the managed files between the base and the candidate it compared; nothing is re-run;
  - history.html: `history`, with the production check on the same traces.

Never does: call a model, run an eval, or write anywhere but DIR.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfimprove.html import pages, write_page
from selfimprove.html.samples import read_samples


def analyze_html(doc: Mapping[str, Any], outcomes: Iterable[Mapping[str, Any]], paths: Sequence[Path], *,
                 format: str, links: Mapping[str, str] | None = None) -> str:
    """The analyze page; reads `paths` once more for start times and the example conversations."""
    wanted = {ex.get("source") for p in doc.get("patterns", [])[:pages.MAX_PATTERNS_SHOWN]
              for ex in p.get("examples", [])}
    samples = read_samples(paths, format=format, wanted={str(w) for w in wanted if w})
    return pages.analyze_page(doc, outcomes, samples, links=links)


@dataclass(frozen=True)
class Written:
    analyze: Path
    eval: Path
    history: Path
    evaluated: str | None  # the proposal branch (or commit) the eval page shows, if any


def report(out: Path, *, traces: Sequence[Path] = (), format: str | None = None, repo: Path | None = None,
           config: Path | None = None) -> Written:
    """Write analyze.html, eval.html and history.html into `out` (created if missing)."""
    from selfimprove import history
    from selfimprove.analysis.pipeline import analyze
    from selfimprove.cli.inputs import resolve_inputs
    from selfimprove.config import CONFIG_NAME, find_root, load_settings
    from selfimprove.errors import SelfImproveError
    from selfimprove.gitrepo import Repo

    root = find_root(repo or Path.cwd())
    # with --traces, a repo without selfimprove.yaml is fine (as for history): no managed files to diff
    settings = (load_settings(repo, config) if config is not None or not traces
                or (root / CONFIG_NAME).is_file() else None)
    inputs, fmt, _, _ = resolve_inputs(list(traces), format, repo, config, None, offline=True)
    inputs = [_relative(p) for p in inputs]  # the pages name files as the user sees them
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SelfImproveError(f"cannot create {out}: {exc.strerror or exc}",
                               hint="choose a folder you can write to") from exc
    links = dict(pages.PAGES)
    result = analyze(inputs, format=fmt)
    page = analyze_html(result.to_json(), (o.to_json() for o in result.outcomes), inputs, format=fmt,
                        links=links)
    write_page(out / pages.PAGES["analyze"], page)
    with Repo.open(settings.root if settings is not None else root) as git_repo:
        ledger = history.build_ledger(git_repo)
        production = history.production_check(git_repo, ledger, inputs, format=fmt)
        write_page(out / pages.PAGES["history"],
                   pages.history_page(history.to_json(ledger, production=production), links=links))
        chosen = next((p for p in ledger.proposals if p.eval), None)  # newest first
        if chosen is None:
            page = pages.eval_page(None, links=links, note="No proposal has been evaluated yet: run "
                                                           "selfimprove eval BRANCH, then report again.")
        else:
            doc = dict(chosen.eval or {})
            managed = settings.managed_paths() if settings is not None else ()
            page = pages.eval_page(doc, _diff(git_repo, doc, managed), links=links)
    write_page(out / pages.PAGES["eval"], page)
    return Written(out / pages.PAGES["analyze"], out / pages.PAGES["eval"], out / pages.PAGES["history"],
                   (chosen.branch or chosen.commit) if chosen is not None else None)


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _diff(git_repo: Any, doc: Mapping[str, Any], managed: Sequence[str]) -> str:
    base, cand = (doc.get(side, {}).get("sha") for side in ("base", "candidate"))
    if not base or not cand or git_repo.try_resolve(base) is None or git_repo.try_resolve(cand) is None:
        return ""
    return str(git_repo.diff(base, cand, managed)) if managed else ""

"""Benchmark: how well `analyze` judges outcomes, per labelled domain, with and without labels.

For every labelled domain at hand (the shared corpus beside the project, and the bundled example):

  prior       AUROC of the shipped prior weights (no label used) on all of the domain's labelled traces
  LODO prior  AUROC of prior weights fitted on the *other* domains only (leave one domain out): what the
              prior can be expected to do on an agent it has never seen
  20 labels   `outcomes.fit` given 10 failures and 10 successes of the domain (DRAWS random draws), scored
              on the domain's remaining labelled traces: mean and range

Labels: a trace's own explicit labels (tau-bench reward, Inspect C/I scores, the example's thumbs and
evaluations), and for Magentic-One the AgentRx ground truth (an annotated trajectory failed, the others
did not: annotation marks failures only, so "success" there means "no failure annotated").
A domain with fewer than 10 traces of an outcome gets no 20-label figure.

The LODO fit pulls towards the hand-set prior (`outcomes.HAND_PRIOR`) with the strength that gives the
best mean LODO AUROC; the shipped `outcomes.PRIOR` is the same fit over every domain (--fit-prior prints it).

Usage: python bench/judgement.py [--draws N] [--shared DIR] [--fit-prior]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selfimprove.analysis import outcomes as oc  # noqa: E402
from selfimprove.analysis.collect import collect  # noqa: E402
from selfimprove.analysis.pipeline import medians_of, vectorize  # noqa: E402
from selfimprove.analysis.records import Summary  # noqa: E402
from selfimprove.traces.read import read_traces  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "traces"
GROUND_TRUTH = "agentrx/ground_truth/magentic_one_ground_truth.json"
DOMAINS = {  # name -> (paths under the shared corpus, or from the project root with "/"; label source)
    "tau_retail": (["agentrx/tau_retail/tau_dataset_full.json"], "reward"),
    "magentic": (["agentrx/magentic_dataset"], "ground truth"),
    "inspect-ai": (["inspect-ai"], "scores C/I"),
    "support-agent": (["/examples/support-agent/logs"], "thumbs, evaluations"),
}
LODO_L2 = (0.5, 2.0, 8.0, 32.0)  # pull towards the hand-set prior, chosen by mean LODO AUROC

Domain = list[tuple[Summary, bool]]


def load(name: str, shared: Path) -> Domain:
    paths = [ROOT / p[1:] if p.startswith("/") else shared / p for p in DOMAINS[name][0]]
    summaries = collect(read_traces(paths)).summaries
    vectorize(summaries, medians_of(summaries))
    if name == "magentic":
        failed = {t["trajectory_id"] for t in json.loads((shared / GROUND_TRUTH).read_text())}
        return [(s, s.id in failed) for s in summaries]
    return [(s, bool(s.label)) for s in summaries if s.label is not None]


def auroc(model: oc.Model, rows: Domain, context: bool = False) -> float | None:
    return oc.auroc([model.score(s.x, s.extra if context else ()) for s, _ in rows], [y for _, y in rows])


def balanced(domains: dict[str, Domain]) -> dict[tuple[oc.Key, bool], float]:
    """Rows of several domains, each domain's failures and successes weighing the same in total, so that
    no one domain (or its base rate) decides the prior."""
    grouped: dict[tuple[oc.Key, bool], float] = {}
    for rows in domains.values():
        for outcome in (True, False):
            part = [s for s, y in rows if y is outcome]
            for s in part:
                key = ((oc._quantise(s.x), ()), outcome)
                grouped[key] = grouped.get(key, 0.0) + 50.0 / len(part)
    return grouped


def prior_from(domains: dict[str, Domain], l2: float) -> oc.Model:
    hand = oc.Model(oc.PRIOR_BIAS, dict(oc.HAND_PRIOR))
    return oc.train(balanced(domains), prior=hand, l2=l2)


def with_labels(rows: Domain, draws: int) -> list[float]:
    fails = [r for r in rows if r[1]]
    oks = [r for r in rows if not r[1]]
    if len(fails) < 10 or len(oks) < 10:
        return []
    found = []
    for seed in range(draws):
        rng = random.Random(seed)
        picked = rng.sample(fails, 10) + rng.sample(oks, 10)
        ids = {id(s) for s, _ in picked}
        fit = oc.fit([(s.x, y) for s, y in picked], extras=[s.extra for s, _ in picked])
        rest = [r for r in rows if id(r[0]) not in ids]
        a = auroc(fit.model, rest, context=True)
        if a is not None:
            found.append(a)
    return found


def fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=5, help="random 10/10 draws per domain (default 5)")
    parser.add_argument("--shared", type=Path, default=SHARED,
                        help="the shared trace corpus (default: ../shared/data/traces beside the project)")
    parser.add_argument("--fit-prior", action="store_true", help="print the prior fitted on every domain")
    args = parser.parse_args(argv)
    domains = {name: load(name, args.shared) for name in DOMAINS}
    # the LODO strength: the one whose held-out domains fare best on average
    best_l2 = max(LODO_L2, key=lambda l2: sum(
        auroc(prior_from({k: v for k, v in domains.items() if k != name}, l2), rows) or 0.5
        for name, rows in domains.items()))
    print(f"{'domain':<14} {'labels':<20} {'traces':>6} {'failed':>6}  {'prior':>5}  {'LODO prior':>10}  "
          f"{'20 labels: mean (range)':<24}")
    for name, rows in domains.items():
        lodo = prior_from({k: v for k, v in domains.items() if k != name}, best_l2)
        learned = with_labels(rows, args.draws)
        spread = (f"{sum(learned) / len(learned):.2f} ({min(learned):.2f}-{max(learned):.2f})" if learned
                  else "n/a (< 10 of an outcome)")
        print(f"{name:<14} {DOMAINS[name][1]:<20} {len(rows):>6} {sum(y for _, y in rows):>6}  "
              f"{fmt(auroc(oc.PRIOR_MODEL, rows)):>5}  {fmt(auroc(lodo, rows)):>10}  {spread:<24}")
    print(f"LODO pull towards the hand-set prior: L2 {best_l2:g}; 20 labels: {args.draws} draws of 10/10, "
          "scored on the rest")
    if args.fit_prior:
        model = prior_from(domains, best_l2)
        print("prior fitted on every domain: bias", round(model.bias, 2),
              {k: round(v, 2) for k, v in model.weights.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

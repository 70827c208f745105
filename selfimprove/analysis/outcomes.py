"""Outcomes: explicit labels first, then implicit signals weighed by what the labels teach.

Owns the decision `failure` / `success` / `unknown` for each trace and its `failure_score` in [0, 1].
An explicit label decides (a failure label wins over a success label: someone saw it fail). A trace
without one is scored by a logistic model over its implicit signals. The model starts from prior
weights (what a signal usually means) and, when enough traces carry labels, is fitted to them:
the same escalation that means failure for a shopping assistant can be the correct outcome of a
triage bot, and only labels can tell. The fit is reported (AUROC of the prior and, by 5-fold
cross-validation, of the learned weights) so a user can see whether the scores deserve trust.

Never does: read files, keep traces (it sees compact feature vectors only), or use a numerical
library: a few hundred gradient steps over the distinct feature vectors are cheap and exact enough.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfimprove.analysis.signals import Signal

if TYPE_CHECKING:
    from selfimprove.analysis.blame import Blame

# The model's features: the implicit signals plus how much longer than usual a run was.
FEATURES = ("tool_error", "user_correction", "rephrase", "escalation", "abandonment", "loop", "refusal",
            "max_turns", "long_run")
# Prior log-odds weights: what each signal usually means when no label says otherwise.
PRIOR: Mapping[str, float] = {
    "tool_error": 1.0, "user_correction": 1.0, "rephrase": 0.8, "escalation": 1.5, "abandonment": 1.5,
    "loop": 2.0, "refusal": 1.0, "max_turns": 2.5, "long_run": 1.0,
}
PRIOR_BIAS = -1.5
FAILURE_THRESHOLD = 0.5
MIN_LABELLED = 20  # labelled traces needed (with MIN_PER_CLASS of each outcome) before weights are learned
MIN_PER_CLASS = 5
L2 = 1.0  # pull towards the prior: with few labels the prior still speaks
FOLDS = 5
REPEATS = 3


@dataclass(frozen=True)
class Outcome:
    trace_id: str
    source: str
    outcome: str  # "failure" | "success" | "unknown"
    failure_score: float
    signals: tuple[Signal, ...]
    pattern: str | None = None
    blame: Blame | None = None  # failures only: which agent, at which step, first went wrong

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"trace_id": self.trace_id, "source": self.source, "outcome": self.outcome,
                               "failure_score": round(self.failure_score, 4),
                               "signals": [s.to_json() for s in self.signals], "pattern": self.pattern}
        if self.blame is not None:
            doc["blame"] = self.blame.to_json()
        return doc


@dataclass(frozen=True)
class Model:
    bias: float
    weights: Mapping[str, float]

    def logit(self, x: Sequence[float]) -> float:
        return self.bias + sum(self.weights[name] * v for name, v in zip(FEATURES, x, strict=True))

    def score(self, x: Sequence[float]) -> float:
        return sigmoid(self.logit(x))


PRIOR_MODEL = Model(PRIOR_BIAS, dict(PRIOR))


@dataclass(frozen=True)
class Fit:
    """How well the signals predict the labels: reported with every analysis."""

    method: str  # "learned" | "prior"
    labelled: int
    labelled_failures: int
    model: Model
    auroc_prior: float | None = None  # the prior weights scored against the labels
    auroc_learned: float | None = None  # cross-validated: each fold scored by a model fitted without it
    note: str = ""
    # name → (traces with it among failures, among successes)
    signal_rates: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    auroc_prior_cv: float | None = None  # the prior on the same held-out folds (like for like)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "labelled": self.labelled,
            "labelled_failures": self.labelled_failures,
            "auroc_prior": _round(self.auroc_prior),
            "auroc_prior_cv": _round(self.auroc_prior_cv),
            "auroc_learned_cv": _round(self.auroc_learned),
            "bias": round(self.model.bias, 4),
            "weights": {k: round(v, 4) for k, v in self.model.weights.items()},
            "signal_rates": {k: {"failures": a, "successes": b} for k, (a, b) in self.signal_rates.items()},
            "note": self.note,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def count_feature(n: int) -> float:
    """1 for one occurrence, growing slowly after that: the second tool error says less than the first."""
    return 0.0 if n <= 0 else 1.0 + math.log(n)


MIN_RUNS_FOR_MEDIAN = 10  # fewer runs of a kind than this say nothing about what "usual" is


def long_run_feature(turns: int, median: float) -> float:
    """How much longer than the median run this one was, on a log scale; 0 when not longer."""
    if turns <= 0 or median <= 0:
        return 0.0
    return max(0.0, min(2.0, math.log2((turns + 1) / (median + 1))))


def features(counts: Mapping[str, int], long_run: float) -> tuple[float, ...]:
    return tuple(long_run if name == "long_run" else count_feature(counts.get(name, 0)) for name in FEATURES)


def label_of(explicit: Iterable[Signal]) -> bool | None:
    """True = labelled failure, False = labelled success, None = no label. A failure label wins."""
    names = {s.name for s in explicit}
    if names & {"explicit_failure", "run_error"}:
        return True
    if "explicit_success" in names:
        return False
    return None


def decide(label: bool | None, x: Sequence[float], model: Model) -> tuple[str, float]:
    """(outcome, failure_score) for one trace."""
    if label is True:
        return "failure", 1.0
    if label is False:
        return "success", 0.0
    score = model.score(x)
    evidence = any(v > 0 for name, v in zip(FEATURES, x, strict=True) if name != "long_run")
    if score >= FAILURE_THRESHOLD and evidence:
        return "failure", score
    if evidence or score >= FAILURE_THRESHOLD:
        return "unknown", score  # a long run alone raises the score but proves nothing
    return "success", score


def contributions(x: Sequence[float], model: Model) -> dict[str, float]:
    return {name: model.weights[name] * v for name, v in zip(FEATURES, x, strict=True) if v > 0}


# --- learning ------------------------------------------------------------------------------------

def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Probability that a random failure scores above a random success (ties count half)."""
    return counted_auroc(Counter(zip(scores, (bool(y) for y in labels), strict=True)).items())


def counted_auroc(counts: Iterable[tuple[tuple[float, bool], float]]) -> float | None:
    """`auroc` over ((score, failed), how many traces) pairs: one step per distinct score. Exact: the
    rank sum adds half-integers times integers, so the order of the additions cannot change it."""
    blocks: dict[float, list[float]] = {}  # score -> [failures, successes]
    for (score, failed), n in counts:
        block = blocks.get(score)
        if block is None:
            block = blocks[score] = [0, 0]
        block[0 if failed else 1] += n
    n_pos = sum(b[0] for b in blocks.values())
    n_neg = sum(b[1] for b in blocks.values())
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = 0.0
    i = 0.0
    for score in sorted(blocks):
        pos, neg = blocks[score]
        j = i + pos + neg
        rank_sum += (i + j + 1) / 2 * pos  # 1-based average rank of the tie block, per failure in it
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _quantise(x: Sequence[float]) -> tuple[float, ...]:
    return tuple(round(v * 8) / 8 for v in x)


Rows = Mapping[tuple[tuple[float, ...], bool], float]  # (features, failed) → how many traces


def _group(rows: Iterable[tuple[Sequence[float], bool]]) -> Counter[tuple[tuple[float, ...], bool]]:
    return Counter((_quantise(x), bool(y)) for x, y in rows)


def train(rows: Sequence[tuple[Sequence[float], bool]] | Rows, *, prior: Model = PRIOR_MODEL, l2: float = L2,
          iterations: int = 25) -> Model:
    """L2-regularised logistic regression towards `prior`, by Newton's method on the distinct rows.

    Minimises the log loss plus l2/2 · |w - w_prior|² (the bias is not pulled). Features the labelled
    traces never show keep their prior weight exactly.
    """
    grouped = rows if isinstance(rows, Mapping) else _group(rows)
    data = [(x, 1.0 if y else 0.0, float(n)) for (x, y), n in sorted(grouped.items()) if n]
    if not data:
        return prior
    names = FEATURES
    seen = [k for k in range(len(names)) if any(x[k] for x, _, _ in data)]
    w = [prior.weights[name] for name in names]
    b = prior.bias
    dims = len(seen) + 1  # the seen features, then the bias
    for _ in range(iterations):
        grad = [0.0] * dims
        hess = [[0.0] * dims for _ in range(dims)]
        for x, y, n in data:
            z = b + sum(w[k] * x[k] for k in seen)
            p = sigmoid(z)
            v = [x[k] for k in seen] + [1.0]
            g = (p - y) * n
            h = p * (1.0 - p) * n
            for i in range(dims):
                if v[i]:
                    grad[i] += g * v[i]
                    hv = h * v[i]
                    row = hess[i]
                    for j in range(dims):
                        if v[j]:
                            row[j] += hv * v[j]
        for i, k in enumerate(seen):
            grad[i] += l2 * (w[k] - prior.weights[names[k]])
            hess[i][i] += l2
        hess[-1][-1] += 1e-6
        step = _solve(hess, grad)
        for i, k in enumerate(seen):
            w[k] -= step[i]
        b -= step[-1]
        if max(abs(d) for d in step) < 1e-7:
            break
    return Model(b, dict(zip(names, w, strict=True)))


def _solve(a: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting for the small Newton systems."""
    n = len(rhs)
    m = [row[:] + [rhs[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12:
            continue
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            if f:
                for c in range(col, n + 1):
                    m[r][c] -= f * m[col][c]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        if abs(m[r][r]) < 1e-12:
            continue
        out[r] = (m[r][n] - sum(m[r][c] * out[c] for c in range(r + 1, n))) / m[r][r]
    return out


def _grouped_auroc(model: Model, grouped: Rows) -> float | None:
    return counted_auroc(((model.score(x), y), n) for (x, y), n in grouped.items())


def fit(rows: Sequence[tuple[Sequence[float], bool]], *, prior: Model = PRIOR_MODEL) -> Fit:
    """Learn signal weights from labelled traces when there are enough; report the fit either way.

    The learned weights are judged by repeated, stratified k-fold cross-validation (deterministic
    shuffles): the mean AUROC of each held-out fold under weights fitted without it, next to the prior
    weights' AUROC on the very same folds.
    """
    import random

    labels = [bool(y) for _, y in rows]
    n_fail = sum(labels)
    distinct = Counter((tuple(x), y) for (x, _), y in zip(rows, labels, strict=True))  # few: counted once
    rates = {
        name: (sum(n for (x, y), n in distinct.items() if y and x[k] > 0),
               sum(n for (x, y), n in distinct.items() if not y and x[k] > 0))
        for k, name in enumerate(FEATURES)
    }
    prior_auc = counted_auroc(((prior.score(x), y), n) for (x, y), n in distinct.items())
    if len(rows) < MIN_LABELLED or n_fail < MIN_PER_CLASS or len(rows) - n_fail < MIN_PER_CLASS:
        note = (f"{len(rows)} labelled traces ({n_fail} failures): prior weights used; learning needs "
                f"{MIN_LABELLED} labelled traces with {MIN_PER_CLASS} of each outcome")
        return Fit("prior", len(rows), n_fail, prior, prior_auc, None, note, rates)
    learned: list[float] = []
    baseline: list[float] = []
    quantised = [_quantise(x) for x, _ in rows]  # once per row, not once per row and repeat
    for repeat in range(REPEATS):
        order = list(range(len(rows)))
        random.Random(repeat).shuffle(order)
        order = [i for i in order if labels[i]] + [i for i in order if not labels[i]]
        folds: list[Counter[tuple[tuple[float, ...], bool]]] = [Counter() for _ in range(FOLDS)]
        for k, i in enumerate(order):
            folds[k % FOLDS][(quantised[i], labels[i])] += 1
        for fold in range(FOLDS):
            rest: Counter[tuple[tuple[float, ...], bool]] = Counter()
            for other in range(FOLDS):
                if other != fold:
                    rest.update(folds[other])
            model = train(rest, prior=prior)
            a, b = _grouped_auroc(model, folds[fold]), _grouped_auroc(prior, folds[fold])
            if a is not None and b is not None:
                learned.append(a)
                baseline.append(b)
    model = train(Counter(zip(quantised, labels, strict=True)), prior=prior)  # = train(rows), grouped
    note = (f"weights learned from {len(rows)} labelled traces ({n_fail} failures); AUROC by {REPEATS}x"
            f"{FOLDS}-fold cross-validation")
    return Fit("learned", len(rows), n_fail, model, prior_auc, _mean(learned), note, rates, _mean(baseline))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None

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

from selfimprove.analysis import signals
from selfimprove.analysis.signals import Signal

if TYPE_CHECKING:
    from selfimprove.analysis.blame import Blame

# The model's generic features: the implicit signals, how much longer (or shorter) than usual a run was,
# and whether the agent's last word claims the task done. Every agent has them, so the prior weighs them.
# Declared, with their prior weights, in `signals.KINDS`.
FEATURES = signals.FEATURES
HAND_PRIOR: Mapping[str, float] = signals.PRIOR_WEIGHTS
PRIOR: Mapping[str, float] = dict(HAND_PRIOR)
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
    """Log-odds of failure: bias + generic weights · x + the weights of the trace's context features
    (`extra`: tools called, last action, failing tools, last speaker; learned from labels only)."""

    bias: float
    weights: Mapping[str, float]
    context: Mapping[str, float] = field(default_factory=dict)

    def logit(self, x: Sequence[float], extra: Iterable[str] = ()) -> float:
        z = self.bias + sum(self.weights[name] * v for name, v in zip(FEATURES, x, strict=True))
        if self.context:
            z += sum(self.context.get(name, 0.0) for name in extra)
        return z

    def score(self, x: Sequence[float], extra: Iterable[str] = ()) -> float:
        return sigmoid(self.logit(x, extra))


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
    cv: str = f"{REPEATS}x{FOLDS}-fold"

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
            "context_weights": {k: round(v, 4) for k, v in self.model.context.items()},
            "calibrated": self.method == "learned",
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


def short_run_feature(turns: int, median: float) -> float:
    """How much shorter than the median run this one was (log scale, capped); 0 when not shorter."""
    if turns <= 0 or median <= 0:
        return 0.0
    return max(0.0, min(2.0, math.log2((median + 1) / (turns + 1))))


def features(counts: Mapping[str, int], long_run: float, short_run: float = 0.0) -> tuple[float, ...]:
    return tuple(long_run if name == "long_run" else short_run if name == "short_run"
                 else count_feature(counts.get(name, 0)) for name in FEATURES)


def label_of(explicit: Iterable[Signal]) -> bool | None:
    """True = labelled failure, False = labelled success, None = no label. A failure label wins."""
    names = {s.name for s in explicit}
    if names & {"explicit_failure", "run_error"}:
        return True
    if "explicit_success" in names:
        return False
    return None


def decide(label: bool | None, x: Sequence[float], model: Model, extra: Iterable[str] = ()
           ) -> tuple[str, float]:
    """(outcome, failure_score) for one trace."""
    if label is True:
        return "failure", 1.0
    if label is False:
        return "success", 0.0
    score = model.score(x, extra)
    # evidence: a signal that speaks for failure under these weights (a long run alone proves nothing)
    evidence = any(v > 0 and model.weights[name] > 0 for name, v in zip(FEATURES, x, strict=True)
                   if name not in ("long_run", "short_run"))
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


Key = tuple[tuple[float, ...], tuple[str, ...]]  # (quantised generic features, context features)
Rows = Mapping[tuple[Key, bool], float]  # (features, failed) → how many traces
Row = tuple[Sequence[float], bool]

MAX_CONTEXT = 24  # context features a model may weigh: the most frequent among the labelled traces
MIN_CONTEXT_SUPPORT = 3  # ... each seen in at least this many of them, and not in all
# Strengths of the pull of context weights towards 0, tried by cross-validation; None = signals only.
CONTEXT_L2 = (None, 1.0, 4.0)
# Context features make labelled traces distinct, and each Newton step costs (distinct rows) x (features
# a row has)²: beyond this many distinct rows, the choice and the context model use a stratified sample
# of this many traces (a few dozen weights need no more), cross-validated once instead of REPEATS times.
MAX_DISTINCT = 300
FEW_DISTINCT = 100


def _group(rows: Iterable[Row], extras: Sequence[Iterable[str]] | None = None,
           vocabulary: frozenset[str] = frozenset()) -> Counter[tuple[Key, bool]]:
    grouped: Counter[tuple[Key, bool]] = Counter()
    for k, (x, y) in enumerate(rows):
        ctx = tuple(sorted(n for n in extras[k] if n in vocabulary)) if extras is not None and vocabulary \
            else ()
        grouped[((_quantise(x), ctx), bool(y))] += 1
    return grouped


def vocabulary(extras: Sequence[Iterable[str]], limit: int = MAX_CONTEXT) -> frozenset[str]:
    """The context features worth a weight: seen in MIN_CONTEXT_SUPPORT labelled traces and not in all."""
    seen: Counter[str] = Counter()
    for extra, n in Counter(tuple(e) for e in extras).items():  # traces share a handful: each counted once
        for name in set(extra):
            seen[name] += n
    ranked = sorted((n for n, c in seen.items() if MIN_CONTEXT_SUPPORT <= c < len(extras)),
                    key=lambda n: (-seen[n], n))
    return frozenset(ranked[:limit])


def train(rows: Sequence[Row] | Rows, *, prior: Model = PRIOR_MODEL, l2: float = L2,
          context_l2: float | None = None, iterations: int = 25) -> Model:
    """L2-regularised logistic regression towards `prior`, by Newton's method on the distinct rows.

    Minimises the log loss plus l2/2 · |w - w_prior|² (the bias is not pulled) and, for the context
    features the rows carry (when `context_l2` is given), context_l2/2 · |v|². Features the labelled
    traces never show keep their prior weight exactly.
    """
    grouped = rows if isinstance(rows, Mapping) else _group(rows)
    if context_l2 is None and any(ctx for (_, ctx), _ in grouped):  # signals only: merge what they share
        merged: dict[tuple[Key, bool], float] = {}
        for ((x, _), failed), n in grouped.items():
            merged[((x, ()), failed)] = merged.get(((x, ()), failed), 0.0) + n
        grouped = merged
    data = [(x, ctx, 1.0 if failed else 0.0, float(n)) for ((x, ctx), failed), n in sorted(grouped.items())
            if n]
    if not data:
        return prior
    names = FEATURES
    seen = [k for k in range(len(names)) if any(x[k] for x, _, _, _ in data)]
    context = sorted({c for _, ctx, _, _ in data for c in ctx}) if context_l2 is not None else []
    cindex = {c: len(seen) + j for j, c in enumerate(context)}
    n_seen = len(seen)
    dims = n_seen + len(context) + 1  # the seen features, the context features, then the bias
    theta = [prior.weights[names[k]] for k in seen] + [0.0] * len(context) + [prior.bias]
    pulled = [prior.weights[names[k]] for k in seen] + [0.0] * len(context)
    strength = [l2] * n_seen + [context_l2 or 0.0] * len(context)
    # each row as (index, value) pairs over those dimensions: Newton steps touch only what a row has
    sparse = [([(i, x[k]) for i, k in enumerate(seen) if x[k]]
               + [(cindex[c], 1.0) for c in ctx if c in cindex] + [(dims - 1, 1.0)], y, n)
              for x, ctx, y, n in data]
    for _ in range(iterations):
        grad = [0.0] * dims
        hess = [[0.0] * dims for _ in range(dims)]
        for pairs, y, n in sparse:
            p = sigmoid(sum(theta[i] * v for i, v in pairs))
            g = (p - y) * n
            h = p * (1.0 - p) * n
            for i, vi in pairs:
                grad[i] += g * vi
                hv = h * vi
                row = hess[i]
                for j, vj in pairs:
                    row[j] += hv * vj
        for i in range(dims - 1):
            grad[i] += strength[i] * (theta[i] - pulled[i])
            hess[i][i] += strength[i]
        hess[-1][-1] += 1e-6
        step = _solve(hess, grad)
        for i in range(dims):
            theta[i] -= step[i]
        if max(abs(d) for d in step) < 1e-7:
            break
    w = [prior.weights[name] for name in names]
    for i, k in enumerate(seen):
        w[k] = theta[i]
    b = theta[-1]
    v_ctx = theta[n_seen:-1]
    ctx_weights = {c: v for c, v in zip(context, v_ctx, strict=True) if abs(v) > 1e-9}
    return Model(b, dict(zip(names, w, strict=True)), ctx_weights)


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
    return counted_auroc(((model.score(x, ctx), y), n) for ((x, ctx), y), n in grouped.items())


def fit(rows: Sequence[Row], *, prior: Model = PRIOR_MODEL, extras: Sequence[Iterable[str]] | None = None
        ) -> Fit:
    """Learn weights from labelled traces (labels per trace, whoever gave them) when there are enough;
    report the fit either way.

    `extras` (one per row) are the traces' context features: what a model may learn beyond the generic
    signals. How hard their weights are pulled towards 0 (or whether they are used at all) is chosen by
    repeated, stratified k-fold cross-validation (deterministic shuffles); the fit reports the chosen
    setting's mean held-out AUROC next to the prior weights' AUROC on the very same folds.
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
        note = (f"{len(rows)} labelled traces ({n_fail} failures): uncalibrated prior weights used; learning "
                f"needs {MIN_LABELLED} labelled traces with {MIN_PER_CLASS} of each outcome")
        return Fit("prior", len(rows), n_fail, prior, prior_auc, None, note, rates)
    vocab = vocabulary(extras) if extras is not None else frozenset()
    keys: dict[tuple[Any, ...], Key] = {}  # rows share a handful of (vector, context) pairs: each keyed once
    keyed = []
    for k, (x, _) in enumerate(rows):
        extra = tuple(extras[k]) if extras is not None else ()
        key = keys.get((x, extra))
        if key is None:
            key = keys[(x, extra)] = (_quantise(x), tuple(sorted(n for n in extra if n in vocab)))
        keyed.append((key, labels[k]))
    settings = [c for c in CONTEXT_L2 if c is None or vocab]
    used = list(range(len(rows)))
    if len(set(keyed)) > MAX_DISTINCT:
        rng = random.Random(0)
        fails = [i for i in used if labels[i]]
        oks = [i for i in used if not labels[i]]
        k = min(len(fails), max(MIN_PER_CLASS, round(MAX_DISTINCT * n_fail / len(rows))))
        used = sorted(rng.sample(fails, k) + rng.sample(oks, min(len(oks), MAX_DISTINCT - k)))
    repeats = REPEATS if len({keyed[i] for i in used}) <= FEW_DISTINCT else 1
    scores: dict[float | None, list[float]] = {c: [] for c in settings}
    baseline: list[float] = []
    for repeat in range(repeats):
        order = used[:]
        random.Random(repeat).shuffle(order)
        order = [i for i in order if labels[i]] + [i for i in order if not labels[i]]
        folds: list[Counter[tuple[Key, bool]]] = [Counter() for _ in range(FOLDS)]
        for k, i in enumerate(order):
            folds[k % FOLDS][keyed[i]] += 1
        for fold in range(FOLDS):
            rest: Counter[tuple[Key, bool]] = Counter()
            for other in range(FOLDS):
                if other != fold:
                    rest.update(folds[other])
            b = _grouped_auroc(prior, folds[fold])
            if b is None:
                continue
            baseline.append(b)
            for c in settings:
                a = _grouped_auroc(train(rest, prior=prior, context_l2=c), folds[fold])
                scores[c].append(a if a is not None else 0.5)
    chosen = max(settings, key=lambda c: (_mean(scores[c]) or 0.0, c is None))
    on = keyed if chosen is None else [keyed[i] for i in used]
    model = train(Counter(on), prior=prior, context_l2=chosen)
    how = "signals only" if chosen is None else f"signals and {len(vocab)} context features (L2 {chosen:g})"
    sample = f" on a sample of {len(used)}" if len(used) < len(rows) else ""
    note = (f"weights learned from {len(rows)} labelled traces ({n_fail} failures): {how}, chosen by "
            f"{repeats}x{FOLDS}-fold cross-validation{sample}, which also gives the AUROC")
    return Fit("learned", len(rows), n_fail, model, prior_auc, _mean(scores[chosen]), note, rates,
               _mean(baseline), f"{repeats}x{FOLDS}-fold")


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None

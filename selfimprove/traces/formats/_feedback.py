"""Outcome fields → `traces.model.Feedback`: rewards, scores, success flags, labels, thumbs.

Owns: reading an outcome value of any common shape (`feedback_from_value`), finding the outcome
fields of a record (`feedback_from_record`, `OUTCOME_KEYS`), and the pass/fail words of labels
(`verdict_of`).

Where a record keeps its label varies by harness: at its top level or under `metadata`/`info`
(read first), or nested in a result object (`{"reward_info": {"reward": 0.0}}`, `{"report":
{"resolved": true}}`, `{"metrics": {"is_correct": false}}`). When the top level says nothing
decisive, the record's objects are searched breadth-first to `NESTED_DEPTH` levels and the shallowest
labels win, under names that say "this run passed" and nothing else (`NESTED_KEYS`).

Must never: judge outcomes (a reward is copied as a reward; deciding that 0 means failure is
`analysis`' job), or take a field of a message, a tool call's arguments, the task's input or its
expected answer for a label: the nested search never enters lists (messages and tool calls live in
lists), message-like or call-like objects, or objects under input/expected-answer names
(`_NOT_RESULTS`), and takes only scalar values (a test list named `success` is not a verdict).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from selfimprove.traces.messages.conversations import is_message_like
from selfimprove.traces.messages.values import is_map, opt_str
from selfimprove.traces.model import Feedback

_PASS_WORDS = {"pass", "passed", "success", "successful", "succeeded", "correct", "c", "yes", "true", "good",
               "resolved", "ok", "positive", "up", "thumbs_up", "thumbsup", "accept", "accepted", "solved",
               "completed", "complete", "win", "helpful", "1"}
_FAIL_WORDS = {"fail", "failed", "failure", "incorrect", "i", "no", "false", "bad", "unresolved", "error",
               "negative", "down", "thumbs_down", "thumbsdown", "reject", "rejected", "wrong", "unsolved",
               "incomplete", "loss", "unhelpful", "0", "errored", "crash", "crashed", "timeout"}


def verdict_of(value: Any) -> bool | None:
    """True/False when a label states pass/fail in a known word; None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower().replace(" ", "_").replace("-", "_")
        if low in _PASS_WORDS:
            return True
        if low in _FAIL_WORDS:
            return False
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


FEEDBACK_KINDS = ("reward", "score", "success", "thumbs", "status", "label", "error")


def feedback_from_value(kind_hint: str, value: Any, name: str | None = None) -> list[Feedback]:
    """Map one outcome field into the Feedback vocabulary of `traces.model`."""
    if value is None:
        return []
    hint = kind_hint.lower()
    if hint in ("error", "exception") and isinstance(value, Mapping):
        message = value.get("message") or value.get("msg") or value.get("type") or value.get("name")
        return [Feedback("error", str(message), name=name)] if message else []
    if isinstance(value, Mapping):
        comment = value.get("comment") or value.get("explanation") or value.get("reason") or value.get("text")
        comment = comment if isinstance(comment, str) else None
        kind = value.get("kind")
        if isinstance(kind, str) and kind in FEEDBACK_KINDS:  # already in our vocabulary
            label = opt_str(value.get("name") or value.get("key")) or name
            items = feedback_from_value(kind, value.get("value"), label)
            passed = value.get("passed")
            return [Feedback(f.kind, f.value, comment or f.comment,
                             passed if isinstance(passed, bool) else f.passed, f.name) for f in items]
        for key in ("reward", "score", "value", "rating", "thumbs", "label", "success", "passed", "correct"):
            if key in value and value[key] is not None and not isinstance(value[key], Mapping | list):
                sub_kind = key if key in ("reward", "score", "thumbs", "label", "success") else hint
                items = feedback_from_value(sub_kind, value[key], opt_str(value.get("key") or
                                                                            value.get("name")) or name)
                return [Feedback(f.kind, f.value, comment or f.comment, f.passed, f.name) for f in items]
        return []
    if isinstance(value, list):
        out: list[Feedback] = []
        for item in value[:50]:
            out.extend(feedback_from_value(hint, item, name))
        return out
    if hint in ("reward",):
        num = _number(value)
        return [Feedback("reward", num, name=name)] if num is not None else []
    if hint in ("thumbs", "thumb", "thumbs_up", "vote", "rating_thumbs"):
        if isinstance(value, bool):
            return [Feedback("thumbs", 1 if value else -1, passed=value, name=name)]
        num = _number(value)
        if num is None:
            verdict = verdict_of(value)
            if verdict is None:
                return [Feedback("label", str(value), name=name)]
            return [Feedback("thumbs", 1 if verdict else -1, passed=verdict, name=name)]
        return [Feedback("thumbs", 1 if num > 0 else -1, passed=num > 0, name=name)]
    if hint in ("success", "passed", "correct", "resolved", "solved", "is_correct", "is_success"):
        verdict = verdict_of(value)
        if verdict is None:
            num = _number(value)
            if num is None:
                return [Feedback("label", str(value), name=name or hint)]
            verdict = num > 0
        return [Feedback("success", verdict, passed=verdict, name=name if name else
                         (None if hint == "success" else hint))]
    if hint in ("status",):
        low = str(value).strip().lower()
        if low in ("ok", "success", "succeeded", "completed", "complete", "done", "finished", "unset",
                   "pass"):
            return [Feedback("status", "ok", passed=None, name=name)]
        if low in ("error", "failed", "failure", "errored", "crashed", "cancelled", "canceled", "timeout",
                   "timed_out", "aborted"):
            return [Feedback("status", "error", comment=None if low == "error" else low, name=name)]
        return []
    if hint in ("error", "exception"):
        if isinstance(value, str) and value.strip():
            return [Feedback("error", value.strip(), name=name)]
        return []
    num = _number(value)
    if hint in ("rating", "grade") and num is not None and not 0.0 <= num <= 1.0:
        # a rating on an unknown scale (1-5 stars, 0-10): kept, but not passed off as a [0, 1] score
        return [Feedback("label", str(value), name=name or hint)]
    if hint in ("score", "rating", "grade", "accuracy", "eval_score", "feedback", "outcome", "result",
                "label") and num is not None and not isinstance(value, str):
        return [Feedback("score", num, name=name)]
    verdict = verdict_of(value)
    if isinstance(value, str):
        if num is not None and hint in ("score", "rating", "grade"):
            return [Feedback("score", num, name=name)]
        return [Feedback("label", value, passed=verdict, name=name or (hint if hint != "label" else None))]
    if isinstance(value, bool):
        return [Feedback("success", value, passed=value, name=name or hint)]
    return []


OUTCOME_KEYS = ("reward", "score", "success", "feedback", "label", "thumbs", "thumbs_up", "rating",
                "passed", "correct", "resolved", "outcome", "result", "evaluation", "eval", "grade",
                "status", "error", "human_label", "is_correct", "is_success")

_OUTCOME_KEY_SET = frozenset(OUTCOME_KEYS)


def feedback_from_record(record: Mapping[str, Any],
                         keys: Sequence[str] = OUTCOME_KEYS) -> tuple[Feedback, ...]:
    """Every outcome field a record carries at its top level (and under `metadata`/`info`), in the
    Feedback vocabulary. `result`/`outcome` strings such as "failure" become labels with a verdict.
    With the default keys, a record whose top level says nothing decisive is searched for nested
    labels (`nested_feedback`)."""
    found = _top_feedback(record, keys)
    if keys is OUTCOME_KEYS and not any(_decisive(f) for f in found):
        nested = nested_feedback(record)
        if nested:
            return found + nested
    return found


def _decisive(fb: Feedback) -> bool:
    """A label that says pass or fail (a status "ok" or an error says only that the run ran or crashed)."""
    return fb.kind in ("reward", "score", "success", "thumbs") or fb.passed is not None


# Names that, nested in a run's record, only ever state its verdict. Broader names (`label`, `result`,
# `status`, `error`, `rating`) are read at the top level only: nested, they are as often a dataset's
# gold answer, a tool's state or a sub-step's error.
NESTED_KEYS = ("reward", "score", "success", "passed", "resolved", "is_correct", "correct", "is_success",
               "is_resolved", "solved")
NESTED_DEPTH = 3  # levels of objects below the record that are searched
# Objects that hold a run's input, its settings or its expected answer, never its result.
_NOT_RESULTS = frozenset({
    "doc", "input", "inputs", "example", "task", "question", "prompt", "arguments", "args", "kwargs",
    "params", "parameters", "config", "configuration", "settings", "request", "tool_input", "tools",
    "function", "state", "env", "environment", "user", "user_scenario", "initial_state",
    "evaluation_criteria", "expected", "expected_output", "target", "targets", "gold", "reference",
    "references", "ground_truth", "answer", "solution", "instance", "item", "sample_input"})
_CALL_KEYS = ("arguments", "args", "kwargs", "input", "parameters")


def nested_feedback(record: Mapping[str, Any]) -> tuple[Feedback, ...]:
    """Labels nested in a record's objects: breadth-first, the shallowest level that has any wins."""
    level: list[Mapping[str, Any]] = [record]
    for _ in range(NESTED_DEPTH):
        out: list[Feedback] = []
        deeper: list[Mapping[str, Any]] = []
        for container in level:
            for key, value in container.items():
                if key in _NOT_RESULTS or not is_map(value):
                    continue
                labelled = not value.keys().isdisjoint(_NESTED_SET)
                parent = False
                for inner in value.values():
                    if is_map(inner):
                        parent = True
                        break
                if not (labelled or parent) or _opaque(value):
                    continue
                if labelled:
                    out.extend(_labels_in(value))
                if parent:
                    deeper.append(value)
        if out or not deeper:
            return tuple(out)
        level = deeper
    return ()


_NESTED_SET = frozenset(NESTED_KEYS)


def _opaque(value: Mapping[str, Any]) -> bool:
    """A message or a tool call: its fields belong to one step of the run, not to the run."""
    return is_message_like(value) or ("name" in value and any(k in value for k in _CALL_KEYS))


def _labels_in(container: Mapping[str, Any]) -> list[Feedback]:
    out: list[Feedback] = []
    for key in NESTED_KEYS:
        value = container.get(key)
        if value is None or isinstance(value, bool):
            pass
        elif isinstance(value, int | float):
            if key == "score" and not 0.0 <= value <= 1.0:
                continue  # a score on an unknown scale (a grade out of 10) says no verdict
        elif not (isinstance(value, str) and verdict_of(value) is not None):
            continue  # lists (test names under `success`), objects, free text
        out.extend(feedback_from_value(key, value))
    return out


def _top_feedback(record: Mapping[str, Any], keys: Sequence[str]) -> tuple[Feedback, ...]:
    out: list[Feedback] = []
    seen: set[str] = set()
    containers: list[Mapping[str, Any]] = [record]
    for sub in ("metadata", "meta", "info", "labels", "annotations", "outcome"):
        if is_map(record.get(sub)):
            containers.append(record[sub])
    wanted = _OUTCOME_KEY_SET if keys is OUTCOME_KEYS else frozenset(keys)
    for container in containers:
        if container.keys().isdisjoint(wanted):  # most containers carry no outcome field
            continue
        for key in keys:
            if key in container and key not in seen:
                value = container[key]
                if key == "status" and not isinstance(value, str):
                    continue
                if key in ("result", "outcome", "evaluation", "eval") and is_map(value):
                    if container is record and key == "outcome":
                        continue  # handled as a container above
                items = feedback_from_value(key, value)
                if items:
                    seen.add(key)
                    out.extend(items)
    return tuple(out)

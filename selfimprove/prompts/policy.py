"""The policy: the single guard every proposal, eval and rollback passes through (DESIGN §3 `policy`).

Owns: comparing the before and after bytes of every managed file and listing each way the change
breaks the repo's rules — immutable bytes changed, a protected phrase removed, a mutable section over
its rule cap, too many characters added, a structured-config value changed outside the mutable JSON
pointers, a config no longer valid against its schema, a file that cannot be parsed, a change to a
file the repo does not manage. Whether a new rule contradicts or weakens an immutable instruction is
`prompts.contradiction`'s heuristic, which `proposals.safety` applies to every proposal.

Must never: read the disk or git (callers pass bytes, so the same check works on a working tree, a
branch or a rollback target), raise for a problem in the files (every problem is a `Violation`), or
decide what to do about a violation (proposers drop the edit, the eval gate fails, rollback refuses).

Why: guardrails are only guardrails if no path around them exists; keeping the check pure and in one
place means every caller enforces exactly the same rules.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from selfimprove.config import PolicySpec, Settings
from selfimprove.errors import SelfImproveError
from selfimprove.prompts.sections import PromptDoc, parse_prompt, rules
from selfimprove.prompts.structured import diff_pointers, load_structured, pointer_line, schema_errors

KINDS = (
    "immutable_changed",
    "protected_phrase_removed",
    "rules_cap",
    "added_chars_cap",
    "pointer_changed",
    "schema_violation",
    "marker_error",
    "unmanaged_change",
)


@dataclass(frozen=True)
class Violation:
    """One broken rule. `line` is 1-based in the after version (None when there is no such line)."""

    kind: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "line": self.line, "message": self.message}


def check(
    policy: PolicySpec,
    settings: Settings,
    before: Mapping[str, bytes | None],
    after: Mapping[str, bytes | None],
) -> list[Violation]:
    """Every violation of `policy` by the change from `before` to `after`.

    `before`/`after` map repo-relative paths to bytes (None = absent) for every managed path (prompts,
    configs and their schemas). A path present in either mapping that the settings do not manage is
    reported as `unmanaged_change` if its bytes differ.
    """
    prompts = set(settings.prompts)
    configs = {spec.path: spec for spec in settings.configs}
    schemas = {spec.schema for spec in settings.configs if spec.schema}
    managed = set(settings.managed_paths())
    out: list[Violation] = []
    added: dict[str, int] = {}
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if path not in managed:
            out.append(
                Violation("unmanaged_change", path, "changes a file that selfimprove.yaml does not manage")
            )
            continue
        if old is None or new is None:
            what = "created" if old is None else "deleted"
            out.append(Violation("immutable_changed", path, f"managed file was {what}"))
        old_text, new_text = _decode(path, old, "before", out), _decode(path, new, "after", out)
        if path in prompts:
            out += _check_prompt(policy, path, old_text, new_text)
        elif path in configs:
            spec = configs[path]
            found = _check_config(path, old_text, new_text, spec.mutable)
            out += found
            if spec.schema and new_text is not None and not any(v.kind == "marker_error" for v in found):
                out += _check_schema(path, new_text, spec.schema, before, after)
        elif path in schemas and old is not None and new is not None:
            out.append(Violation("immutable_changed", path, "the JSON Schema of a managed config changed"))
        out += _check_protected(policy, path, old_text, new_text)
        if new_text is not None:
            added[path] = added_chars(old_text or "", new_text)
    # A config whose schema changed must still be valid against the new schema.
    for spec in settings.configs:
        if (
            spec.schema
            and before.get(spec.schema) != after.get(spec.schema)
            and before.get(spec.path) == (after.get(spec.path))
        ):
            text = _decode(spec.path, after.get(spec.path), "after", [])
            if text is not None:
                out += _check_schema(spec.path, text, spec.schema, before, after)
    total = sum(added.values())
    if total > policy.max_added_chars:
        largest = max(added, key=lambda p: added[p])
        files = len([n for n in added.values() if n])
        out.append(
            Violation(
                "added_chars_cap",
                largest,
                f"{total} characters added across {files} file(s), "
                f"above max_added_chars={policy.max_added_chars}",
            )
        )
    return out


def _decode(path: str, data: bytes | None, which: str, out: list[Violation]) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = (
            "not valid UTF-8 text"
            if which == "after"
            else f"before the change: not valid UTF-8 (line {line})"
        )
        out.append(Violation("marker_error", path, message, line if which == "after" else None))
        return None


def _parse(path: str, text: str, which: str, out: list[Violation]) -> PromptDoc | None:
    try:
        return parse_prompt(text, path)
    except SelfImproveError as exc:
        out.append(_error_violation(path, exc, which))
        return None


def _error_violation(path: str, exc: SelfImproveError, which: str) -> Violation:
    line = None
    if exc.where and exc.where.startswith(path + ":") and exc.where[len(path) + 1 :].isdigit():
        line = int(exc.where[len(path) + 1 :])
    prefix = "" if which == "after" else "before the change: "
    return Violation("marker_error", path, prefix + exc.message, line if which == "after" else None)


def _check_prompt(
    policy: PolicySpec, path: str, old_text: str | None, new_text: str | None
) -> list[Violation]:
    out: list[Violation] = []
    old = _parse(path, old_text, "before", out) if old_text is not None else None
    new = _parse(path, new_text, "after", out) if new_text is not None else None
    if new is None:
        return out
    old_sections = dict(old.sections) if old is not None else {}
    for section in new.sections.values():
        if not section.mutable:
            continue
        count = len(rules(section.body))
        previous = old_sections.get(section.id)
        was = len(rules(previous.body)) if previous is not None and previous.mutable else 0
        if count > policy.max_rules_per_section and count > was:
            out.append(
                Violation(
                    "rules_cap",
                    path,
                    f"section '{section.id}' has {count} rules (was {was}), "
                    f"above max_rules_per_section={policy.max_rules_per_section}",
                    section.line,
                )
            )
    if old is None:
        return out
    out += _immutable_changes(path, old, new)
    return out


def _immutable_changes(path: str, old: PromptDoc, new: PromptDoc) -> list[Violation]:
    out: list[Violation] = []
    before, after = old.sections, new.sections
    for section_id, section in before.items():
        if section_id not in after:
            out.append(
                Violation(
                    "immutable_changed",
                    path,
                    f"section '{section_id}' was removed (it was at line {section.line})",
                )
            )
        elif after[section_id].mutable != section.mutable:
            out.append(
                Violation(
                    "immutable_changed",
                    path,
                    f"section '{section_id}' changed from {section.kind} to {after[section_id].kind}",
                    after[section_id].line,
                )
            )
    for section_id, section in after.items():
        if section_id not in before:
            out.append(
                Violation("immutable_changed", path, f"section '{section_id}' was added", section.line)
            )
    if out or old.immutable_text() == new.immutable_text():
        return out
    # Same sections: name each immutable region that changed, at its first differing line.
    regions: dict[str | None, tuple[list[tuple[int, str]], list[tuple[int, str]]]] = {}
    for doc, side in ((old, 0), (new, 1)):
        for number, text, owner in doc.lines():
            if owner is not None and owner.mutable:
                continue
            key = owner.id if owner is not None else None
            regions.setdefault(key, ([], []))[side].append((number, text))
    for key, (old_lines, new_lines) in regions.items():
        if [t for _, t in old_lines] == [t for _, t in new_lines]:
            continue
        line = _first_difference(old_lines, new_lines)
        what = (
            f"immutable section '{key}' changed"
            if key is not None
            else "text outside mutable sections changed"
        )
        out.append(Violation("immutable_changed", path, what, line))
    return sorted(out, key=lambda v: v.line or 0)


def _first_difference(old: list[tuple[int, str]], new: list[tuple[int, str]]) -> int | None:
    for (_, a), (number, b) in zip(old, new, strict=False):
        if a != b:
            return number
    if len(new) > len(old):
        return new[len(old)][0]
    return new[-1][0] if new else None


def _check_config(
    path: str, old_text: str | None, new_text: str | None, mutable: tuple[str, ...]
) -> list[Violation]:
    out: list[Violation] = []
    docs: list[Any] = []
    for text, which in ((old_text, "before"), (new_text, "after")):
        if text is None:
            return out
        try:
            docs.append(load_structured(text, path))
        except SelfImproveError as exc:
            out.append(_error_violation(path, exc, which))
    if out:
        return out
    allowed = ", ".join(mutable) if mutable else "none"
    assert new_text is not None
    for pointer in diff_pointers(docs[0], docs[1]):
        if any(pointer == m or pointer.startswith(m.rstrip("/") + "/") or m == "" for m in mutable):
            continue
        line = pointer_line(new_text, path, pointer)
        out.append(
            Violation(
                "pointer_changed",
                path,
                f"{pointer or '(the whole document)'} changed, "
                f"but it is not a mutable pointer (mutable: {allowed})",
                line,
            )
        )
    return out


def _check_schema(
    path: str,
    text: str,
    schema_path: str,
    before: Mapping[str, bytes | None],
    after: Mapping[str, bytes | None],
) -> list[Violation]:
    raw = after[schema_path] if schema_path in after else before.get(schema_path)
    if raw is None:
        return [Violation("schema_violation", path, f"its schema {schema_path} does not exist")]
    out: list[Violation] = []
    schema_text = _decode(schema_path, raw, "after", out)
    if schema_text is None:
        return out
    try:
        schema = load_structured(schema_text, schema_path)
        doc = load_structured(text, path)
        if not isinstance(schema, dict):
            raise SelfImproveError("a JSON Schema must be an object", where=schema_path)
        errors = schema_errors(doc, schema, schema_path)
    except SelfImproveError as exc:
        target = exc.where.split(":")[0] if exc.where else path
        return [_error_violation(target, exc, "after")]
    for json_path, message, pointer in errors:
        out.append(
            Violation("schema_violation", path, f"{json_path}: {message}", pointer_line(text, path, pointer))
        )
    return out


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _check_protected(
    policy: PolicySpec, path: str, old_text: str | None, new_text: str | None
) -> list[Violation]:
    if old_text is None:
        return []
    old, new = _normalise(old_text), _normalise(new_text or "")
    return [
        Violation("protected_phrase_removed", path, f'protected phrase "{phrase}" was removed')
        for phrase in policy.protected_phrases
        if _normalise(phrase) and _normalise(phrase) in old and _normalise(phrase) not in new
    ]


def added_chars(old: str, new: str) -> int:
    """Characters added by the change, as a reviewer counts them: the text of inserted lines, and the
    inserted characters within changed lines (line endings not counted)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    total = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "insert":
            total += _visible("".join(b[j1:j2]))
        elif tag == "replace":
            left, right = "".join(a[i1:i2]), "".join(b[j1:j2])
            if len(left) * len(right) > 4_000_000:  # keep pathological rewrites cheap
                total += _visible(right)
                continue
            matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
            total += sum(
                _visible(right[k1:k2])
                for op, _, _, k1, k2 in matcher.get_opcodes()
                if op in ("insert", "replace")
            )
    return total


def _visible(text: str) -> int:
    return len(text) - text.count("\n") - text.count("\r")

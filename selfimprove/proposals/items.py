"""The items of a mutable section, each with a stable id, and delta operations on them.

Owns: splitting a section body into items — a top-level rule (a bullet with its continuation lines) or
a block of other text (an example, a paragraph) — naming each by a short hash of its normalised text,
applying `add` / `replace` / `remove` operations to a body, and listing what an edit added and removed
(for any proposer: the safety checks and the commit message read it, not the proposer's word).

Must never: touch headings (a line starting with '#' is the section's frame, not an item) or any text
outside the body it is given. Why ids from text, not positions: the model names the item it means,
and the id of an item does not move when another item is added or removed before it.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from selfimprove.proposals.text import append_lines, bullet_for, strip_bullet

_BULLET = re.compile(r"^(?P<indent>[ \t]*)(?P<mark>[-*+]|\d{1,9}[.)])[ \t]+\S")


@dataclass(frozen=True)
class Item:
    id: str
    text: str  # its lines as in the body, bullet included, joined by "\n"
    start: int  # first line index in the body
    end: int  # one past its last line
    rule: bool  # a bullet rule (else a block of text)

    @property
    def content(self) -> str:
        """What the item says: a rule without its bullet, a block as it is."""
        return " ".join(strip_bullet(line) for line in self.text.splitlines()) if self.rule else self.text


def item_id(text: str) -> str:
    from selfimprove.proposals.dedupe import normalise

    flat = " ".join(normalise(line) for line in text.splitlines())
    return hashlib.sha1(flat.encode("utf-8")).hexdigest()[:6]


def items(body: str) -> list[Item]:
    """The items of `body` in order; a repeated text gets its id with "-2", "-3"… appended."""
    lines = body.split("\n")
    found: list[tuple[int, int, bool]] = []
    top: int | None = None
    i = 0
    while i < len(lines):
        raw = lines[i]
        if not raw.strip() or raw.lstrip().startswith("#"):
            i += 1
            continue
        bullet = _BULLET.match(raw)
        indent = _indent(raw)
        if bullet and (top is None or indent <= top):
            top = indent if top is None else top
            j = i + 1
            while j < len(lines) and lines[j].strip() and _indent(lines[j]) > top:
                j += 1  # continuation lines and sub-bullets belong to the rule
            found.append((i, j, True))
        else:
            j = i + 1
            while j < len(lines) and lines[j].strip() and not _BULLET.match(lines[j]) \
                    and not lines[j].lstrip().startswith("#"):
                j += 1
            found.append((i, j, False))
        i = j
    seen: Counter[str] = Counter()
    out: list[Item] = []
    for start, end, rule in found:
        text = "\n".join(lines[start:end])
        base = item_id(strip_bullet(text) if rule else text)
        seen[base] += 1
        out.append(Item(base if seen[base] == 1 else f"{base}-{seen[base]}", text, start, end, rule))
    return out


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def listing(body: str) -> list[dict[str, str]]:
    """The items as a model is shown them: id and text."""
    return [{"id": it.id, "text": it.content} for it in items(body)]


def apply_operations(body: str, operations: Sequence[Mapping[str, Any]], *, examples: bool) -> str:
    """`body` after the operations, in order. Raises ValueError naming the first operation that cannot
    apply (an unknown id, an empty text). `examples`: the section holds examples, so an added text is a
    block of its own; elsewhere it is a rule in the section's bullet style."""
    current = body
    for n, op in enumerate(operations, 1):
        kind = str(op.get("op"))
        by_id = {it.id: it for it in items(current)}
        text = _clean(str(op.get("text") or ""))
        if kind in ("replace", "remove"):
            target = by_id.get(str(op.get("id")))
            if target is None:
                known = ", ".join(by_id) or "none"
                raise ValueError(f"operation {n} ({kind}) names item {op.get('id')!r}, which is not in the "
                                 f"section (items: {known})")
            lines = current.split("\n")
            if kind == "remove":
                new: list[str] = []
            else:
                if not text:
                    raise ValueError(f"operation {n} (replace) has no text")
                new = _rule_lines(target.text, text) if target.rule else text.split("\n")
            current = "\n".join(lines[: target.start] + new + lines[target.end :])
        elif kind == "add":
            if not text:
                raise ValueError(f"operation {n} (add) has no text")
            if examples or "\n" in text:
                current = append_lines(current, [text], blank_line_before=bool(current.strip()))
            else:
                current = append_lines(current, [bullet_for(current) + strip_bullet(text)])
        else:
            raise ValueError(f"operation {n} has an unknown op {kind!r}")
    return re.sub(r"\n{3,}", "\n\n", current)


def _clean(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip()


def _rule_lines(old: str, text: str) -> list[str]:
    match = _BULLET.match(old)
    mark = old[: match.end() - 1] if match else "- "
    return [mark + strip_bullet(" ".join(text.split()))]


def changes(before: str, after: str) -> tuple[list[Item], list[Item]]:
    """(items added, items removed or rewritten) from `before` to `after`, by their text."""
    old, new = items(before), items(after)
    return _unmatched(new, old), _unmatched(old, new)


def _unmatched(these: Sequence[Item], others: Sequence[Item]) -> list[Item]:
    """The items of `these` with no counterpart among `others` (same text id; repeats counted)."""
    left = Counter(it.id.split("-")[0] for it in others)
    out: list[Item] = []
    for it in these:
        key = it.id.split("-")[0]
        if left[key] > 0:
            left[key] -= 1
        else:
            out.append(it)
    return out

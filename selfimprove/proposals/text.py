"""Text helpers of `propose`: trace text made safe to quote, section bodies grown by a line or a block.

Trace text is data. Before any of it is quoted into a prompt it is redacted (secrets and personal
data), flattened to one line, stripped of anything that could open or close a section marker or a
template variable, and bounded in length; text that reads like an instruction aimed at the agent or at
its prompt ("ignore the rules", "delete the safety section") is never quoted at all.

Never does: decide whether an edit is allowed (that is `prompts.policy`) or touch files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_INJECTION = re.compile(
    r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instructions?|rules?|prompt|above|previous|"
    r"guardrails?|safety|polic(y|ies))\b"
    r"|\bsystem\s+prompt\b"
    r"|\b(delete|remove|drop|disable|change|edit|rewrite|replace)\b.{0,40}\b(sections?|rules?|guardrails?|"
    r"safety|prompt|instructions?|polic(y|ies))\b"
    r"|\badd\s+(a|this|the|an?\s+new)\s+rule\b"
    r"|\b(reveal|show|print|leak|expose)\b.{0,40}\b(internal|notes?|instructions|prompt|secrets?|"
    r"passwords?|keys?)\b"
    r"|\byou\s+are\s+now\b|\bnew\s+instructions?\b|selfimprove:",
    re.IGNORECASE | re.DOTALL,
)
_BULLET = re.compile(r"^(?P<indent>[ \t]*)(?P<mark>[-*+]|\d+[.)])[ \t]+\S")
_MARKUP = re.compile(r"<!--|-->|\{\{|\}\}|\{%|%\}")


def looks_like_injection(text: str) -> bool:
    """True when trace text reads like an instruction to the agent or about its prompt."""
    return bool(_INJECTION.search(text))


def quote(text: str, limit: int = 140) -> str:
    """Trace text as a one-line, redacted, marker-free quote of at most `limit` characters."""
    from selfimprove.redact import redact

    flat = " ".join(redact(text).split())
    flat = _MARKUP.sub(lambda m: {"<!--": "<!", "-->": "->"}.get(m.group(0), m.group(0)[0]), flat)
    flat = flat.replace("`", "'").replace('"', "'")
    if len(flat) > limit:
        cut = flat[: limit - 1]
        space = cut.rfind(" ")
        flat = (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:.") + "…"
    return flat


_CLAUSE_END = re.compile(r"[:;,(]\s|\s[-–]\s")
_ERROR_PREFIX = re.compile(r"^(?:[A-Za-z]*(?:Error|Exception)|error|fatal)\s*:\s*", re.IGNORECASE)


def gist(text: str, limit: int = 48) -> str:
    """A title-sized quote: the first clauses that fit in `limit`, whole words, no ellipsis.

    Commit subjects and branch names read better as "invalid order_id format" than as
    "Error: invalid order_id format: expected 5 dig…"."""
    flat = quote(text, 10_000)
    flat = _ERROR_PREFIX.sub("", flat) or flat
    if len(flat) <= limit:
        return flat
    ends = [m.start() for m in _CLAUSE_END.finditer(flat) if 2 * limit // 3 <= m.start() <= limit]
    if ends:
        return flat[: ends[-1]].rstrip(" .")
    cut = flat[: limit + 1]
    return cut[: cut.rfind(" ")].rstrip(" ,;:.") if " " in cut else flat[:limit]


def bullet_for(body: str) -> str:
    """The bullet the section already uses for its rules ("- ", "* ", the next number), else "- "."""
    last: re.Match[str] | None = None
    for line in body.splitlines():
        match = _BULLET.match(line)
        if match:
            last = match
    if last is None:
        return "- "
    mark = last.group("mark")
    if mark[0].isdigit():
        mark = f"{int(mark[:-1]) + 1}{mark[-1]}"
    return f"{last.group('indent')}{mark} "


def strip_bullet(line: str) -> str:
    match = _BULLET.match(line)
    return line[match.end("mark") :].strip() if match else line.strip()


def append_lines(body: str, lines: Sequence[str], *, blank_line_before: bool = False) -> str:
    """`body` with `lines` added after its last non-blank line; blank lines after it are kept."""
    text = "\n".join(lines)
    content = body.rstrip()
    if not content:
        return text + "\n"
    trailing = body[len(content) :]
    trailing = trailing[trailing.index("\n") :] if "\n" in trailing else "\n"
    separator = "\n\n" if blank_line_before else "\n"
    return content + separator + text + trailing


def with_layout(original: str, new: str) -> str:
    """A model's new body given the leading blank lines of `original` and exactly one final newline."""
    core = new.strip("\n")
    if not core.strip():
        return ""
    lead = original[: len(original) - len(original.lstrip("\n"))]
    return lead + core.rstrip() + "\n"

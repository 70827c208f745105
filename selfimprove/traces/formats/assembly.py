"""Conversation assembly: the spans of one trace → one conversation, its feedback and start time.

Owns: `assemble` and `merge_conversation`. LLM spans repeat the whole history in their input, so
the conversation is the longest input seen plus the outputs, extended only by messages not already
present (aligned in order when views diverge); wrapper LLM spans come after their children; tool
spans add results the LLM spans did not show and mark errors `is_error`; span errors become a
`status` feedback.

Must never: read files or attributes (spans arrive as `SpanView`s), or judge outcomes beyond
recording that a span failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import orjson

from selfimprove.traces.formats.span_attributes import SpanView
from selfimprove.traces.messages.values import loads_maybe
from selfimprove.traces.model import Feedback, Message


def _canonical(value: Any) -> str:
    try:
        return orjson.dumps(
            value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        ).decode()
    except (TypeError, RecursionError):
        return str(value)


def _key(message: Message) -> tuple[Any, ...]:
    calls = tuple(
        (
            c.name,
            _canonical(c.arguments) if isinstance(c.arguments, dict) else str(c.arguments or "").strip(),
        )
        for c in message.tool_calls
    )
    return (message.role, " ".join(message.content.split()), calls)


def merge_conversation(
    conv: list[Message], candidate: Sequence[Message], key: Callable[[Message], tuple[Any, ...]] = _key
) -> list[Message]:
    """Extend `conv` by `candidate` (a later span's full view) without repeating what is there."""
    if not candidate:
        return conv
    if not conv:
        return list(candidate)
    ck = [key(m) for m in conv]
    nk = [key(m) for m in candidate]
    if nk[: len(ck)] == ck:
        return list(candidate)
    if ck[: len(nk)] == nk:
        return conv
    # Diverging views (a wrapper span's summary, a sub-agent, an SDK that logs only the new turn):
    # align in order, keep what is there, insert what is new where it belongs.
    out = list(conv)
    used = [False] * len(out)
    known = set(ck)
    first = next((k for k in nk if k in known), None)
    pos = ck.index(first) if first is not None else len(out)
    for message, mkey in zip(candidate, nk, strict=True):
        at = next((i for i in range(pos, len(out)) if not used[i] and ck[i] == mkey), None)
        if at is None:
            at = next((i for i in range(0, min(pos, len(out))) if not used[i] and ck[i] == mkey), None)
        if at is not None:
            used[at] = True
            pos = max(pos, at + 1)
            continue
        out.insert(pos, message)
        ck.insert(pos, mkey)
        used.insert(pos, True)
        pos += 1
    return out


def _same_text(a: str, b: str) -> bool:
    if " ".join(a.split()) == " ".join(b.split()):
        return True
    if a[:1] in "[{" and b[:1] in "[{":
        left, right = loads_maybe(a), loads_maybe(b)
        return not isinstance(left, str) and left == right
    return False


def _place_tool_result(conv: list[Message], span: SpanView, matched: set[int]) -> list[Message]:
    tool = span.tool
    if tool is None:
        return conv
    message = Message(
        role="tool", content=tool.result, tool_call_id=tool.call_id, is_error=span.error, name=tool.name
    )
    if span.error and not message.content:
        message = replace(message, content=span.error_message or "error")
    if not message.content.strip() and not span.error:
        return conv  # lifecycle markers (…start / …finish spans) carry no result
    ids = {c.id for m in conv for c in m.tool_calls if c.id}
    for i, existing in enumerate(conv):
        if existing.role != "tool" or i in matched:
            continue
        same_id = tool.call_id is not None and existing.tool_call_id == tool.call_id
        same_text = bool(tool.result) and _same_text(existing.content, tool.result)
        same_call = (
            (existing.tool_call_id is None or existing.tool_call_id not in ids)
            and bool(tool.name)
            and (existing.name == tool.name and (tool.call_id is None or tool.call_id not in ids))
        )
        if same_id or same_text or same_call:
            matched.add(i)
            conv[i] = replace(
                existing,
                is_error=existing.is_error or span.error,
                name=existing.name or tool.name,
                tool_call_id=existing.tool_call_id or tool.call_id,
            )
            return conv
    answered = {m.tool_call_id for m in conv if m.role == "tool" and m.tool_call_id}
    anchor = None
    for i, existing in enumerate(conv):
        for call in existing.tool_calls:
            if tool.call_id is not None and call.id == tool.call_id:
                anchor = i
            elif (
                tool.call_id is None and call.name == tool.name and call.id not in answered and anchor is None
            ):
                anchor = i
                if call.id:
                    message = replace(message, tool_call_id=call.id)
    if anchor is None:
        conv.append(message)
        matched.add(len(conv) - 1)
        return conv
    at = anchor + 1
    while at < len(conv) and conv[at].role == "tool":
        at += 1
    conv.insert(at, message)
    shifted = {i + 1 if i >= at else i for i in matched}
    matched.clear()
    matched.update(shifted | {at})
    return conv


def assemble(
    spans: Iterable[SpanView],
) -> tuple[list[Message], list[Feedback], datetime | None, SpanView | None]:
    """One trace's spans → (messages, feedback, started_at, root span)."""
    ordered = sorted(
        spans, key=lambda s: (s.start is None, s.start or datetime.min.replace(tzinfo=timezone.utc), s.order)
    )
    ids = {s.span_id for s in ordered}
    roots = [s for s in ordered if not s.parent_id or s.parent_id not in ids]
    root = roots[0] if roots else (ordered[0] if ordered else None)
    # A wrapper LLM span (Vercel `ai.generateText`, a framework's `invoke`) repeats what its child
    # LLM calls did in one summary; the children carry the real turns, so wrappers come last and
    # only add what the children did not show.
    by_id = {s.span_id: s for s in ordered}
    wrappers: set[str] = set()
    for span in ordered:
        if span.kind == "llm" and (span.inputs or span.outputs):
            parent, hops = span.parent_id, 0
            while parent is not None and parent in by_id and hops < 256:
                if by_id[parent].kind == "llm":
                    wrappers.add(parent)
                parent, hops = by_id[parent].parent_id, hops + 1
    cache: dict[int, tuple[Any, ...]] = {}  # every message stays alive in its span meanwhile

    def key(message: Message) -> tuple[Any, ...]:
        found = cache.get(id(message))
        if found is None:
            found = cache[id(message)] = _key(message)
        return found

    conv: list[Message] = []
    for span in ordered:
        if span.kind == "llm" and span.span_id not in wrappers:
            conv = merge_conversation(conv, span.inputs + span.outputs, key)
    for span in ordered:  # a wrapper may still know something its children did not log
        if span.span_id in wrappers:
            conv = merge_conversation(conv, span.inputs + span.outputs, key)
    if not conv:
        for span in roots + [s for s in ordered if s not in roots]:
            if span.kind != "tool" and (span.inputs or span.outputs):
                conv = merge_conversation(conv, span.inputs + span.outputs, key)
                break
    matched: set[int] = set()
    for span in ordered:
        if span.kind == "tool":
            conv = _place_tool_result(conv, span, matched)
    feedback: list[Feedback] = []
    for span in ordered:
        feedback.extend(span.feedback)
    errors = [s for s in ordered if s.error and s.kind != "tool"]
    if errors or (root is not None and root.error):
        first = errors[0] if errors else root
        assert first is not None
        feedback.append(
            Feedback(
                kind="status",
                value="error",
                comment=first.error_message or None,
                passed=False,
                name=first.name or None,
            )
        )
    starts = [s.start for s in ordered if s.start is not None]
    return conv, feedback, (min(starts) if starts else None), root


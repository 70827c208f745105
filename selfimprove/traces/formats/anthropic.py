"""Anthropic Messages: request/response bodies with a top-level `system`, `messages` whose content is
a string or a list of blocks (`text`, `tool_use {id, name, input}`, `tool_result {tool_use_id,
content, is_error}` sent in a user turn), and responses `{role: assistant, content: [...],
stop_reason}`. Also HTTP recordings of `/v1/messages` calls (request and response bodies).

`tool_use` blocks become tool calls of the assistant message; each `tool_result` block becomes its
own `tool` message carrying `is_error`, so every format reaches `analysis` in the same shape.
"""

from __future__ import annotations

from pathlib import Path

from selfimprove.traces.formats import _io, _records


class AnthropicReader(_records.RecordReader):
    name = "anthropic"

    def sniff(self, path: Path, head: bytes) -> int:
        body = _io.text_head(head)
        if not body.startswith((b"{", b"[")):
            return 0
        score = 0
        if b"api.anthropic.com" in body:
            score = 80
        if _io.head_has(body, b'"tool_use"', b'"tool_result"', b'"tool_use_id"') and b'"messages"' in body:
            score = max(score, 70)
        if b'"stop_reason"' in body and b'"content"' in body:
            score = max(score, 65)
        if b'"anthropic_version"' in body:
            score = max(score, 75)
        return score


READER = AnthropicReader()

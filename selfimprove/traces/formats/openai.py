"""OpenAI chat messages: records holding `messages` (or `traj`, `history`, `conversation`) with
`tool_calls`, as JSONL, a JSON array of records, or one record; also request/response logs
(`choices[].message`), HTTP recordings of chat-completion calls, and tau-bench runs
(`{task_id, trial, reward, info, traj}`).

Outcome fields a record carries (`reward`, `score`, `success`, `feedback`, `label`, `thumbs`, ...)
become `Feedback` in the vocabulary of `traces.model`; nothing is inferred from the messages here.
"""

from __future__ import annotations

from pathlib import Path

from selfimprove.traces.formats import _io, _records
from selfimprove.traces.messages.roles import STANDARD_ROLES, normalise_role

_MESSAGE_KEYS = (b'"messages"', b'"traj"', b'"history"', b'"conversation"', b'"conversations"')


class OpenAIReader(_records.RecordReader):
    name = "openai"

    def sniff(self, path: Path, head: bytes) -> int:
        body = _io.text_head(head)
        if not body.startswith((b"{", b"[")):
            return 0
        score = 0
        if _io.head_has(body, *_MESSAGE_KEYS) and b'"role"' in body:
            score = 55
        if b'"tool_calls"' in body or b'"tool_call_id"' in body or b'"function"' in body:
            score += 10
        if b'"chat.completion' in body or b'"choices"' in body or b"api.openai.com" in body:
            score = max(score, 50) + 10
        if score and _io.head_has(body, b'"reward"', b'"task_id"', b'"trial"') >= 2:
            score += 10  # tau-bench runs
        if not score and body.startswith(b"[") and b'"role"' in body:
            roles = {normalise_role(r) for r in _io.head_roles(body)}
            if roles and roles <= STANDARD_ROLES:
                score = 40  # a bare list of OpenAI messages
        return min(score, 85)


READER = OpenAIReader()

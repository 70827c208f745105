"""The documented generic trace format, and the fallback for any JSON(L) with messages in it.

Generic JSONL: one trace per line (a JSON array of such objects, or one object, also works)::

    {"id": "ticket-4711",                       # optional; default: file name + record index
     "messages": [                              # required: OpenAI-style chat messages
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": null,
         "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": "{\\"id\\": 7}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "timeout", "is_error": true},
        {"role": "assistant", "content": "Sorry, I could not find it."}],
     "outcome": "failure",                      # optional: success|failure, a number, or {"reward": 0}
     "feedback": {"thumbs": -1, "comment": "didn't help"},   # optional: a value, an object or a list
     "timestamp": "2025-06-01T12:00:00Z",       # optional: ISO 8601 or epoch seconds/ms
     "prompt_version": "v12",                   # optional: which prompt version served it
     "metadata": {"user_tier": "gold"}}         # optional: anything

`content` may be a string or a list of parts (`{"type": "text", "text": ...}`, Anthropic blocks);
roles may be agent names. Feedback objects may name their kind directly (`{"kind": "thumbs",
"value": -1}`; kinds: reward, score, success, thumbs, status, label, error) or use the usual keys
(`reward`, `score`, `thumbs`, `label`, `success`, `comment`). Top-level `reward`, `score`,
`success`, `label`, `thumbs`, `status` and `error` are read too.

One message per line is also accepted: each line a message (`{"role", "content", ...}`) with a
`trace_id`, `session_id` or `conversation_id` field; lines are grouped into one trace per id
(interleaved conversations are fine), and outcome fields on any of its lines apply to the trace.

As the fallback reader, it also reads JSON(L) from projects nobody wrote a reader for: any record
with a list of message-like objects (role/content, from/value, speaker/text, LangChain types) under
any key becomes a trace; a file without any is reported as "ignored" with the reason.
"""

from __future__ import annotations

from pathlib import Path

from selfimprove.traces.formats import _io, _records


class GenericReader(_records.RecordReader):
    name = "generic"

    def sniff(self, path: Path, head: bytes) -> int:
        body = _io.text_head(head)
        if not body.startswith((b"{", b"[")):
            return 0
        if _io.head_has(body, b'"messages"', b'"trace_id"', b'"session_id"', b'"conversation_id"') and \
                _io.head_has(body, b'"role"', b'"content"'):
            return 30
        return 10


READER = GenericReader()

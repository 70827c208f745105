"""pydantic-ai message history: the JSON `ModelMessagesTypeAdapter.dump_json(result.all_messages())`
writes, a list of `{kind: request | response, parts: [{part_kind, ...}]}` (or records holding one).

Requests carry `system-prompt`, `user-prompt`, `tool-return` and `retry-prompt` parts, one message each;
a response's `text` and `tool-call` parts are one assistant message. A tool return whose `outcome` is
`failed` or `retried` (a tool that raised `ModelRetry`), and a `retry-prompt`, are failed tool results.
The conversion lives in `_messages`, so such histories inside other records are read the same way.
"""

from __future__ import annotations

from selfimprove.traces.formats._records import KeyedRecordReader

READER = KeyedRecordReader("pydantic-ai", (b'"part_kind"',), needs=(b'"parts"',))

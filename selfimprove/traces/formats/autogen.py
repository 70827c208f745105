"""AutoGen: AgentChat messages and events (`{source, type, content}`: a `TaskResult` with its
`stop_reason`, a team's saved state, or a JSON list of them) and autogen_core model context messages
(`UserMessage`, `AssistantMessage`, `FunctionExecutionResultMessage`).

`ToolCallRequestEvent` content becomes tool calls, each entry of a `ToolCallExecutionEvent` a `tool`
message carrying `is_error`; agents speak as assistants named after their `source`. Thoughts and
streamed chunks are left out (the full message follows them). The conversion lives in `_messages`, so
AutoGen messages found inside other records (span payloads) are read the same way.
"""

from __future__ import annotations

from selfimprove.traces.formats._records import KeyedRecordReader

READER = KeyedRecordReader(
    "autogen",
    (b'"TextMessage"', b'"ToolCallRequestEvent"', b'"ToolCallExecutionEvent"', b'"HandoffMessage"',
     b'"ToolCallSummaryMessage"', b'"StopMessage"', b'"FunctionExecutionResultMessage"'),
    needs=(b'"source"',),
)

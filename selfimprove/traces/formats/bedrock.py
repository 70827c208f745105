"""Amazon Bedrock Converse API (also the message shape of Strands Agents): request/response bodies
whose messages carry blocks keyed by kind, `{text}`, `{toolUse: {toolUseId, name, input}}`,
`{toolResult: {toolUseId, content: [{text} | {json}], status}}` in a user turn, `{reasoningContent}`;
responses `{output: {message}, stopReason}`. Also HTTP recordings of `/converse` calls.

`toolUse` blocks become tool calls of the assistant message; each `toolResult` block its own `tool`
message, failed when its `status` is `error` (the conversion lives in `_messages`).
"""

from __future__ import annotations

from selfimprove.traces.formats._records import KeyedRecordReader

READER = KeyedRecordReader("bedrock", (b'"toolUse"', b'"toolResult"', b'"toolUseId"', b"bedrock-runtime."))

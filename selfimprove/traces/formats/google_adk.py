"""Google ADK sessions: `{events: [{author, content: {role, parts}, invocationId, ...}]}` as a session
is saved or an agent's events are recorded (camelCase by alias, snake_case from `model_dump`).

Parts are Gemini's: `text`, `functionCall` (tool calls of the model turn), `functionResponse` (one `tool`
message each); the agent that wrote a model turn names it (`author`). The conversion lives in
`_messages`, so such events inside other records are read the same way.
"""

from __future__ import annotations

from selfimprove.traces.formats._records import KeyedRecordReader

READER = KeyedRecordReader("google-adk", (b'"invocationId"', b'"invocation_id"'), needs=(b'"author"',))

"""The one role table: every reader, of records or of spans, names a speaker through `normalise_role`.

Owns: the standard roles, the aliases that map onto them (`customer` → user, `agent` → assistant,
`observation` → tool, …), and LangChain's message classes. Must never: be copied into a reader (a
second table is how record readers and span readers came to disagree on `customer`), or drop a
name it does not know (an agent's name is kept as the role; multi-agent analysis reads it).
"""

from __future__ import annotations

from typing import Any

STANDARD_ROLES = frozenset({"system", "user", "assistant", "tool"})


ROLE_ALIASES = {
    "human": "user", "customer": "user", "client": "user", "input": "user", "prompt": "user",
    "ai": "assistant", "bot": "assistant", "model": "assistant", "gpt": "assistant", "agent": "assistant",
    "chatbot": "assistant", "output": "assistant", "completion": "assistant", "response": "assistant",
    "function": "tool", "tool_result": "tool", "ipython": "tool", "observation": "tool",
    "tool_response": "tool", "environment": "tool",
    "developer": "system", "instruction": "system", "instructions": "system",
    "tool-call": "assistant", "tool-response": "tool",  # smolagents, Meta ARE
}


def normalise_role(role: Any, missing: str = "unknown") -> str:
    """Lower-case standard roles and their common aliases; any other role (an agent's name) is kept.
    `missing` is the role of a message that names none (span readers pass "" and fill in the role
    the field implies: input → user, output → assistant)."""
    text = str(role).strip() if role is not None else ""
    if not text:
        return missing
    low = text.lower()
    if low in STANDARD_ROLES:
        return low
    return ROLE_ALIASES.get(low, text)


LANGCHAIN_CLASSES = {
    "HumanMessage": "user",
    "HumanMessageChunk": "user",
    "AIMessage": "assistant",
    "AIMessageChunk": "assistant",
    "SystemMessage": "system",
    "SystemMessageChunk": "system",
    "ToolMessage": "tool",
    "ToolMessageChunk": "tool",
    "FunctionMessage": "tool",
    "ChatMessage": "",
}


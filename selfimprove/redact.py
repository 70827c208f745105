"""Redaction: secrets and personal data out of anything that leaves the machine or is shared.

Owns the one list of what is redacted (private keys, bearer tokens, API keys, e-mail addresses,
Luhn-checked card numbers, phone numbers → `[REDACTED:kind]`) and the three ways it is applied: to a
text (`redact`), to every string of a JSON-like value (`redacted`: reports, exported cases, the
evidence a proposer quotes or sends), and to chat messages (`redact_messages`: every model call).

Never does: redact keys of a mapping (they are names the code chose: signals, agents, arguments), or
import anything beyond the standard library: it is imported by every stage, and at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
                               re.S)),
    ("bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}")),
    ("api_key", re.compile(
        r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}"  # OpenAI / Anthropic
        r"|AKIA[0-9A-Z]{16}"  # AWS access key id
        r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
        r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
        r"|AIza[0-9A-Za-z_-]{35}"  # Google
        r"|hf_[A-Za-z0-9]{30,})"  # Hugging Face
    )),
    ("api_key", re.compile(
        r"(?i)\b(?:api[_-]?key|secret|access[_-]?token|password)\b([\"']?\s*[:=]\s*[\"']?)"
        r"[A-Za-z0-9._~+/-]{12,}"
    )),
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")),
    ("card", re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")),
    ("phone", re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,3}"
        r"|\(\d{3}\)\s?\d{3}[ .-]\d{4}"
        r"|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])"
    )),
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def redact(text: str) -> str:
    """API keys, bearer tokens, e-mails, card numbers (Luhn-checked), phone numbers → `[REDACTED:kind]`."""
    for kind, pattern in _SECRET_PATTERNS:
        if kind == "card":
            def _card(m: re.Match[str]) -> str:
                digits = re.sub(r"\D", "", m.group(0))
                return "[REDACTED:card]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else m.group(0)

            text = pattern.sub(_card, text)
        elif kind == "api_key" and pattern.groups:
            text = pattern.sub(lambda m: m.group(0)[: m.end(1) - m.start(0)] + "[REDACTED:api_key]", text)
        else:
            text = pattern.sub(f"[REDACTED:{kind}]", text)
    return text


def redacted(value: Any) -> Any:
    """`value` (JSON-like) with every string passed through `redact`; lists and tuples keep their type,
    mappings become dicts with the same keys. Reports and exported cases are shared and committed, and
    evidence is quoted into prompts and sent to models: none of them carries a key, token, e-mail, card
    or phone number."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redacted(v) for v in value)
    return value


def redact_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages with the text of each (a string, or the text parts of a list) redacted."""
    out: list[dict[str, Any]] = []
    for message in messages:
        copy = dict(message)
        content = copy.get("content")
        if isinstance(content, str):
            copy["content"] = redact(content)
        elif isinstance(content, list):
            copy["content"] = [
                {**part, "text": redact(part["text"])}
                if isinstance(part, Mapping) and isinstance(part.get("text"), str) else part
                for part in content
            ]
        out.append(copy)
    return out

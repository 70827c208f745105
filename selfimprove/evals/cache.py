"""Content-addressed answers on disk, so an unchanged base is never asked again and a re-run is free.

Owns: the cache key of an eval answer (a SHA-256 of the provider's identity, everything the provider
receives for the case — its `request()`: for a litellm model the messages and call parameters, tools
included; for an `exec:` harness also the vars and the parsed structured configs of the side asked —
and the repeat index, as canonical JSON) and the answer's document; the layout on disk and atomic
writes are `selfimprove.store`'s.

Must never: store an error (a failed call is retried next run, not remembered), or let a damaged entry
break a run (it is treated as a miss and rewritten).

The repeat index is part of the key on purpose: `--repeat 3` asks three times, and the second run of
the same suite finds all three answers again. The key holds what the provider receives and nothing
else: a config change invalidates exactly the answers asked with the changed config (the candidate's)
when the provider sees configs, while a litellm model, which never sees configs or vars, keeps one
answer for two cases that differ only there. The key also de-duplicates identical calls within a run
(even with `--no-cache`), which is why it must hold everything: a key that left out the vars once made
two harness cases that differed only in vars share one answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from selfimprove.evals.assertions import Output
from selfimprove.store import CACHE_DIR, JsonStore
from selfimprove.traces.model import ToolCall

__all__ = ["CACHE_DIR", "Cache", "cache_key"]

KEY_VERSION = 2


def cache_key(provider: str, request: Mapping[str, Any], repeat: int) -> str:
    """The hash of everything that determines an answer: the provider's identity, the `request` it
    receives (`Provider.request`) and the repeat index."""
    doc: dict[str, Any] = {"v": KEY_VERSION, "provider": provider, "request": dict(request), "repeat": repeat}
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _to_json(output: Output) -> dict[str, Any]:
    return {
        "text": output.text,
        "tool_calls": [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in output.tool_calls],
        "input_tokens": output.input_tokens,
        "output_tokens": output.output_tokens,
        "cost_usd": output.cost_usd,
        "latency_ms": output.latency_ms,
    }


def _from_json(doc: Mapping[str, Any]) -> Output:
    return Output(
        text=str(doc["text"]),
        tool_calls=tuple(ToolCall(name=c["name"], arguments=c.get("arguments"), id=c.get("id"))
                         for c in doc.get("tool_calls", [])),
        input_tokens=int(doc.get("input_tokens", 0)),
        output_tokens=int(doc.get("output_tokens", 0)),
        cost_usd=float(doc.get("cost_usd", 0.0)),
        latency_ms=float(doc.get("latency_ms", 0.0)),
    )


class Cache(JsonStore):
    """A directory of answers. `enabled=False` (`--no-cache`) neither reads nor writes."""

    def get(self, key: str) -> Output | None:
        doc = self.get_doc(key)
        if doc is None:
            return None
        try:
            return _from_json(doc)
        except (ValueError, KeyError, TypeError):
            return None  # a damaged entry is a miss; the next put replaces it

    def put(self, key: str, output: Output) -> None:
        self.put_doc(key, _to_json(output))

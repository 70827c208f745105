"""Content-addressed answers on disk, so an unchanged base is never asked again and a re-run is free.

Owns: the cache key of an eval answer (a SHA-256 of the provider, the rendered messages, the call
parameters, the repeat index and — for providers that receive them, i.e. `exec:` harnesses — the
parsed structured configs of the side asked, as canonical JSON) and the answer's document; the layout
on disk and atomic writes are `selfimprove.store`'s.

Must never: store an error (a failed call is retried next run, not remembered), or let a damaged entry
break a run (it is treated as a miss and rewritten).

The repeat index is part of the key on purpose: `--repeat 3` asks three times, and the second run of
the same suite finds all three answers again. Configs are in the key only when the provider sees them:
a config change then invalidates exactly the answers asked with the changed config (the candidate's),
while the base's stay cached; a litellm model never sees configs, so its keys ignore them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from selfimprove.evals.assertions import Output
from selfimprove.store import CACHE_DIR, JsonStore
from selfimprove.traces.model import ToolCall

__all__ = ["CACHE_DIR", "Cache", "cache_key"]

KEY_VERSION = 1


def cache_key(provider: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
              repeat: int, configs: Mapping[str, Any] | None = None) -> str:
    """The hash of everything that determines an answer.

    `configs` (repo-relative path -> parsed document) is what an `exec:` harness receives besides the
    messages; None or empty leaves the key as it was without them, so existing entries stay valid.
    """
    doc: dict[str, Any] = {"v": KEY_VERSION, "provider": provider, "messages": list(messages),
                           "params": dict(params), "repeat": repeat}
    if configs:
        doc["configs"] = dict(configs)
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _to_json(output: Output) -> dict[str, Any]:
    return {
        "text": output.text,
        "tool_calls": [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in output.tool_calls],
        "input_tokens": output.input_tokens,
        "output_tokens": output.output_tokens,
        "cost_usd": output.cost_usd,
    }


def _from_json(doc: Mapping[str, Any]) -> Output:
    return Output(
        text=str(doc["text"]),
        tool_calls=tuple(ToolCall(name=c["name"], arguments=c.get("arguments"), id=c.get("id"))
                         for c in doc.get("tool_calls", [])),
        input_tokens=int(doc.get("input_tokens", 0)),
        output_tokens=int(doc.get("output_tokens", 0)),
        cost_usd=float(doc.get("cost_usd", 0.0)),
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

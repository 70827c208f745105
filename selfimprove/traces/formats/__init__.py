"""The registry of trace formats: one reader per format, each able to recognise its own files.

Owns: `FORMATS`, the one list of readers (imported statically: a reader that fails to import is a
bug, not a missing feature), `REGISTRY` (name → reader, built from it), the `Reader` protocol, and
`choose`, which asks every reader how sure it is that a file is its own (from the path and the first
bytes) and picks the most confident one. Must never: read whole files to decide (sniffing sees
`_io.HEAD_BYTES`), or know format details (those live in each reader's `sniff`).

Sniff confidence scale: 0 = not mine, 10 = "JSON that might hold messages" (the generic fallback),
30–60 = plausible from keys, 70–90 = distinctive keys of the format, 100 = certain (e.g. a zip with
Inspect's `header.json`).

Tie rule: when two readers give a file the same (highest) confidence, the one listed earlier in
`FORMATS` reads it. The list is ordered from specific to general so that this rule is the intended
one: formats with their own file layout (Inspect, Claude Code, SWE-agent, OpenHands) first, then the
span exports (OTLP before the conventions carried inside OTLP-like JSON: OpenInference, LangSmith,
Langfuse), then framework record formats, then the provider message formats, then multi-agent chat
logs, and the generic reader last. `tests/traces/test_read.py` checks the order's invariants.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from selfimprove.traces.formats import (
    anthropic,
    autogen,
    bedrock,
    claude_code,
    generic,
    google_adk,
    inspect,
    langfuse,
    langsmith,
    multi_agent,
    openai,
    openhands,
    openinference,
    otlp,
    pydantic_ai,
    swe_agent,
)
from selfimprove.traces.formats._io import PLAIN, ReadContext, SourceReport
from selfimprove.traces.model import Trace


class Reader(Protocol):
    name: str

    def sniff(self, path: Path, head: bytes) -> int:
        """0 = not mine; higher = more confident (see the module docstring for the scale)."""
        ...

    def read(self, path: Path, report: SourceReport, context: ReadContext = PLAIN) -> Iterator[Trace]:
        """Stream the file's traces; skip (and count, via `report.skip`) bad records."""
        ...


# Specific before general: on equal confidence the earlier reader wins (see the module docstring).
FORMATS: tuple[Reader, ...] = (
    inspect.READER,
    claude_code.READER,
    swe_agent.READER,
    openhands.READER,
    otlp.READER,
    openinference.READER,
    langsmith.READER,
    langfuse.READER,
    autogen.READER,
    bedrock.READER,
    pydantic_ai.READER,
    google_adk.READER,
    anthropic.READER,
    openai.READER,
    multi_agent.READER,
    generic.READER,
)

REGISTRY: dict[str, Reader] = {reader.name: reader for reader in FORMATS}


def choose(path: Path, head: bytes, readers: Sequence[Reader] = FORMATS) -> tuple[Reader | None, int]:
    """The most confident reader for a file (None, 0 when no reader claims it); on a tie, the one
    listed first in `readers`."""
    best: Reader | None = None
    best_score = 0
    for reader in readers:
        try:
            score = int(reader.sniff(path, head))
        except (ValueError, TypeError, KeyError, IndexError, RecursionError):
            score = 0
        if score > best_score:  # strictly greater: a later reader never takes a tie
            best, best_score = reader, score
    return best, best_score

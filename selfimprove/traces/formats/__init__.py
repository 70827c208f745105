"""The registry of trace formats: one reader per format, each able to recognise its own files.

Owns: the name → reader mapping (`REGISTRY`), the `Reader` protocol, and `choose`, which asks every
reader how sure it is that a file is its own (from the path and the first bytes) and picks the most
confident one. Must never: read whole files to decide (sniffing sees `_io.HEAD_BYTES`), or know
format details (those live in each reader's `sniff`).

Sniff confidence scale: 0 = not mine, 10 = "JSON that might hold messages" (the generic fallback),
30–60 = plausible from keys, 70–90 = distinctive keys of the format, 100 = certain (e.g. a zip with
Inspect's `header.json`). Ties go to the earlier entry in `REGISTRY`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Protocol, runtime_checkable

from selfimprove.traces.formats._io import SourceReport
from selfimprove.traces.model import Trace

# Format name → module (in traces/formats/). Order breaks sniff ties: specific before general.
FORMAT_MODULES: dict[str, str] = {
    "inspect": "inspect",
    "claude-code": "claude_code",
    "swe-agent": "swe_agent",
    "openhands": "openhands",
    "otlp": "otlp",
    "openinference": "openinference",
    "langsmith": "langsmith",
    "langfuse": "langfuse",
    "autogen": "autogen",
    "bedrock": "bedrock",
    "pydantic-ai": "pydantic_ai",
    "google-adk": "google_adk",
    "anthropic": "anthropic",
    "openai": "openai",
    "multi-agent": "multi_agent",
    "generic": "generic",
}


@runtime_checkable
class Reader(Protocol):
    name: str

    def sniff(self, path: Path, head: bytes) -> int:
        """0 = not mine; higher = more confident (see the module docstring for the scale)."""
        ...

    def read(self, path: Path, report: SourceReport) -> Iterator[Trace]:
        """Stream the file's traces; skip (and count, via `report.skip`) bad records."""
        ...


def _reader_of(module: ModuleType, name: str) -> Reader | None:
    for attr in ("READER", "reader"):
        obj = getattr(module, attr, None)
        if obj is not None and isinstance(obj, Reader):
            return obj
    for obj in vars(module).values():  # a module that only defines its reader class
        if isinstance(obj, type) and getattr(obj, "name", None) == name and obj.__module__ == module.__name__:
            try:
                instance = obj()
            except TypeError:
                continue
            if isinstance(instance, Reader):
                return instance
    return None


def _load() -> dict[str, Reader]:
    registry: dict[str, Reader] = {}
    for name, module_name in FORMAT_MODULES.items():
        qualified = f"{__name__}.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:  # a format whose reader is not part of this build
                continue
            raise
        reader = _reader_of(module, name)
        if reader is not None:
            registry[name] = reader
    return registry


REGISTRY: dict[str, Reader] = _load()


def format_names() -> list[str]:
    return list(REGISTRY)


def choose(path: Path, head: bytes) -> tuple[Reader | None, int]:
    """The most confident reader for a file (None, 0 when no reader claims it)."""
    best: Reader | None = None
    best_score = 0
    for reader in REGISTRY.values():
        try:
            score = int(reader.sniff(path, head))
        except (ValueError, TypeError, KeyError, IndexError, RecursionError):
            score = 0
        if score > best_score:
            best, best_score = reader, score
    return best, best_score

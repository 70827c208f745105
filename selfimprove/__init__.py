"""selfimprove: make LLM agents better from their own production traces, safely."""

__version__ = "0.1.0"

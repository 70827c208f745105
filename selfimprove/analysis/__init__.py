"""Analysis: outcomes, signals and failure patterns from traces (see `pipeline` for the flow)."""

from __future__ import annotations

from selfimprove.analysis.outcomes import Fit, Outcome
from selfimprove.analysis.pipeline import analyze
from selfimprove.analysis.records import Analysis, Evidence, Pattern
from selfimprove.analysis.signals import Signal

__all__ = ["Analysis", "Evidence", "Fit", "Outcome", "Pattern", "Signal", "analyze"]

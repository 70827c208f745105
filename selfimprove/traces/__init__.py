"""Trace readers: every supported log format into the one model of `traces.model`."""

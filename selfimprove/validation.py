"""Validation messages for files users write: the one way JSON Schema errors become one clear line.

Owns: choosing the most specific schema error, naming where it is as a JSON path (`$.tests[0].assert`)
and a YAML line, and saying what was expected in words. Used by the settings file and eval suites;
never imports anything heavy at module level.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any


def json_path(location: Sequence[Any], prefix: str = "$") -> str:
    return prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in location)


def deepest_error(validator: Any, doc: Any) -> Any | None:
    """The most specific error (the deepest path); among equals, the first in document order."""
    errors = list(validator.iter_errors(doc))
    if not errors:
        return None
    return max(errors, key=lambda e: len(list(e.absolute_path)))


def error_location(error: Any) -> list[Any]:
    """Where to point a reader: the unexpected key itself for `additionalProperties`."""
    location = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if extra:
            location.append(extra[0])
    return location


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The near miss `word` probably meant among `choices`, if one is close enough."""
    import difflib

    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.75)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'icontains'?)' for a near miss among `choices`, else ''."""
    near = closest(word, choices)
    return f" (did you mean {near!r}?)" if near else ""


_ALTERNATIVES = re.compile(r"\(((?:[\w-]+\|)+[\w-]+)\)\$?$")


def pattern_choices(pattern: str) -> list[str]:
    """The words an enumerating pattern such as `^(not-)?(equals|contains|...)$` accepts."""
    match = _ALTERNATIVES.search(pattern)
    if not match:
        return []
    prefix = pattern[: match.start()]
    words = match.group(1).split("|")
    return words + [f"not-{w}" for w in words] if "(not-)?" in prefix else words


def describe(error: Any) -> str:
    """What was expected, in words (jsonschema's own message can quote a whole document)."""
    validator = error.validator
    description = str(error.schema.get("description", "")) if isinstance(error.schema, dict) else ""
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        extra = sorted(set(error.instance) - set(known))
        return f"unknown key {extra[0]!r}{did_you_mean(extra[0], known)}" if extra else str(error.message)
    if validator == "required":
        return str(error.message).replace("is a required property", "is required")
    if validator == "type":
        return f"expected {error.validator_value}, got {type(error.instance).__name__}"
    if validator == "const":
        return f"expected {error.validator_value!r}, got {error.instance!r}"
    if validator == "pattern" and description.startswith("A path relative"):
        return f"{error.instance!r} must be a path relative to the repo root, inside it"
    if validator == "pattern" and description.startswith("A JSON pointer"):
        return f"{error.instance!r} must be a JSON pointer such as '/temperature'"
    message = str(error.message)
    return message if len(message) <= 160 else message[:157] + "..."


def yaml_line(node: Any, location: Sequence[Any]) -> int | None:
    """1-based line of the YAML node at `location` in a composed document (the deepest existing
    ancestor when the path does not exist)."""
    import yaml

    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for key in location:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(key):
                    child, line = value_node, key_node.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            child = node.value[key]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def yaml_text_line(text: str, location: Sequence[Any]) -> int | None:
    import yaml

    try:
        return yaml_line(yaml.compose(text), location)
    except yaml.YAMLError:
        return None

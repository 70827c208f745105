"""Structured configs (YAML and JSON): read and edit values at JSON pointers, validate against a schema.

Owns: loading a config by its extension, RFC 6901 pointers (get, set, diff), minimal-diff edits, and
JSON Schema validation with messages that name the JSON path.

Must never: re-serialise a whole file when one value changes. An edit replaces the text of that one
value (located from the parser's own marks: ruamel.yaml's composer for YAML, a span-tracking scan for
JSON), so comments, key order, quoting and formatting of every untouched line stay byte-identical, and
every edit is verified by loading the result. Only when a value cannot be replaced in place (a new YAML
key, a block scalar, a block collection) does YAML fall back to ruamel.yaml's round-trip dump, which
still keeps comments.

Why: these files are reviewed as git diffs; a proposal that changes `/temperature` must show one line.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from selfimprove.errors import SelfImproveError

YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)
_MISSING = object()


def kind_of(path: str) -> str:
    """ "yaml" or "json" by extension; SelfImproveError for anything else."""
    lower = path.lower()
    if lower.endswith(YAML_SUFFIXES):
        return "yaml"
    if lower.endswith(JSON_SUFFIXES):
        return "json"
    raise SelfImproveError(
        f"unsupported config format: {path}",
        where=path,
        hint="structured configs must be .yaml, .yml or .json",
    )


# --- loading -----------------------------------------------------------------------------------------


def load_structured(text: str, path: str) -> Any:
    """Parse a YAML or JSON config into plain values; SelfImproveError(where="path:line") if invalid."""
    if kind_of(path) == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SelfImproveError(
                f"invalid JSON: {exc.msg} (column {exc.colno})",
                where=f"{path}:{exc.lineno}",
                hint="fix the JSON syntax",
            ) from None
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = exc.problem or exc.context or "syntax error"
        raise SelfImproveError(f"invalid YAML: {problem}", where=where, hint="fix the YAML syntax") from None
    except YAMLError as exc:
        raise SelfImproveError(f"invalid YAML: {exc}", where=path, hint="fix the YAML syntax") from None


# --- pointers ----------------------------------------------------------------------------------------


def split_pointer(pointer: str, path: str | None = None) -> list[str]:
    """RFC 6901 reference tokens of `pointer` ("" is the whole document)."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise SelfImproveError(
            f"invalid JSON pointer '{pointer}'",
            where=path,
            hint="a JSON pointer starts with '/', e.g. /tools/search/max_results",
        )
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def join_pointer(tokens: list[str] | tuple[str, ...]) -> str:
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def _step(node: Any, token: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(token, _MISSING)
    if isinstance(node, list):
        if re.fullmatch(r"0|[1-9][0-9]*", token) and int(token) < len(node):
            return node[int(token)]
    return _MISSING


def get_pointer(doc: Any, pointer: str, *, path: str | None = None) -> Any:
    """The value at `pointer`; SelfImproveError naming the pointer (and file, if given) when absent."""
    node = doc
    tokens = split_pointer(pointer, path)
    for depth, token in enumerate(tokens):
        node = _step(node, token)
        if node is _MISSING:
            missing = join_pointer(tokens[: depth + 1])
            detail = f" ({missing} does not exist)" if missing != pointer else ""
            raise SelfImproveError(
                f"no value at JSON pointer {pointer}{detail}",
                where=f"{path}: {pointer}" if path else None,
                hint="check the pointer against the file (keys are case-sensitive, list items are /0, /1, …)",
            )
    return node


def _same(a: Any, b: Any) -> bool:
    """Equality that tells 1 from True and 1 from "1" (but 1 == 1.0, as YAML and JSON readers agree)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def diff_pointers(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Pointers of every value that differs: the deepest mapping key that was added, removed or changed;
    a list whose length changed is reported as a whole, otherwise item by item."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        out: list[str] = []
        for key in list(before) + [k for k in after if k not in before]:
            sub = prefix + join_pointer([str(key)])
            if key not in before or key not in after:
                out.append(sub)
            else:
                out += diff_pointers(before[key], after[key], sub)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        pairs = enumerate(zip(before, after, strict=True))
        return [p for i, (x, y) in pairs for p in diff_pointers(x, y, f"{prefix}/{i}")]
    return [] if _same(before, after) else [prefix]


def _with_value(doc: Any, tokens: list[str], value: Any) -> Any:
    """A deep copy of `doc` with the value at `tokens` set (the parent must exist)."""
    new = copy.deepcopy(doc)
    parent = new
    for token in tokens[:-1]:
        parent = _step(parent, token)
    last = tokens[-1]
    if isinstance(parent, list):
        parent[int(last)] = copy.deepcopy(value)
    else:
        parent[last] = copy.deepcopy(value)
    return new


# --- spans -------------------------------------------------------------------------------------------


@dataclass
class _Span:
    """Where a value sits in the text: [start, end), plus what the in-place editor needs to know."""

    start: int
    end: int
    inline: bool  # a scalar or flow collection whose text can be replaced as is
    style: str | None = None  # YAML scalar quote style: None (plain), "'", '"', "|", ">"
    members: list[tuple[str, int, int, _Span]] | None = None  # JSON objects: (key, key start, key end, value)
    items: list[_Span] | None = None  # JSON arrays


def _yaml_root(text: str, path: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="rt").compose(text)
    except YAMLError:
        load_structured(text, path)  # raises the well-formed message
        raise


def _yaml_span(text: str, path: str, tokens: list[str]) -> _Span | None:
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    node = _yaml_root(text, path)
    for token in tokens:
        found = None
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value == token:
                    found = value  # the last duplicate wins, as in the loader
        elif isinstance(node, SequenceNode) and _INDEX.fullmatch(token):
            if int(token) < len(node.value):
                found = node.value[int(token)]
        if found is None:
            return None
        node = found
    return _yaml_node_span(text, node)


def _yaml_node_span(text: str, node: Any) -> _Span:
    from ruamel.yaml.nodes import MappingNode, ScalarNode

    start, end = node.start_mark.index, node.end_mark.index
    style = getattr(node, "style", None)
    anchored = getattr(node, "anchor", None) is not None or text[start : start + 1] in ("&", "!", "*")
    inline = isinstance(node, ScalarNode) or text[start : start + 1] in ("{", "[")
    span = _Span(start, end, inline=inline and not anchored, style=style)
    if isinstance(node, MappingNode) and not anchored:
        span.members = [
            (str(key.value), key.start_mark.index, key.end_mark.index, _yaml_node_span(text, value))
            for key, value in node.value
        ]
    return span


_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_NUMBER = re.compile(
    r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null|NaN|-?Infinity"
)
_INDEX = re.compile(r"0|[1-9][0-9]*")


def _json_value(text: str, i: int) -> _Span:
    i = _JSON_WS.match(text, i).end()  # type: ignore[union-attr]
    char = text[i : i + 1]
    if char == '"':
        return _Span(i, json.decoder.scanstring(text, i + 1)[1], inline=True)  # type: ignore[attr-defined]
    if char == "{":
        members: list[tuple[str, int, int, _Span]] = []
        j = _JSON_WS.match(text, i + 1).end()  # type: ignore[union-attr]
        if text[j : j + 1] == "}":
            return _Span(i, j + 1, inline=True, members=members)
        while True:
            j = _JSON_WS.match(text, j).end()  # type: ignore[union-attr]
            key, key_end = json.decoder.scanstring(text, j + 1)  # type: ignore[attr-defined]
            colon = _JSON_WS.match(text, key_end).end()  # type: ignore[union-attr]
            value = _json_value(text, colon + 1)
            members.append((key, j, key_end, value))
            j = _JSON_WS.match(text, value.end).end()  # type: ignore[union-attr]
            if text[j] == "}":
                return _Span(i, j + 1, inline=True, members=members)
            j += 1  # the comma
    if char == "[":
        items: list[_Span] = []
        j = _JSON_WS.match(text, i + 1).end()  # type: ignore[union-attr]
        if text[j : j + 1] == "]":
            return _Span(i, j + 1, inline=True, items=items)
        while True:
            item = _json_value(text, j)
            items.append(item)
            j = _JSON_WS.match(text, item.end).end()  # type: ignore[union-attr]
            if text[j] == "]":
                return _Span(i, j + 1, inline=True, items=items)
            j += 1
    match = _JSON_NUMBER.match(text, i)
    if match is None:
        raise ValueError(f"unexpected JSON at {i}")
    return _Span(i, match.end(), inline=True)


def _json_span(text: str, path: str, tokens: list[str]) -> _Span | None:
    load_structured(text, path)  # a clear error first, if the JSON is broken
    node: _Span | None = _json_value(text, 0)
    for token in tokens:
        assert node is not None
        if node.members is not None:
            matches = [value for key, _, _, value in node.members if key == token]
            node = matches[-1] if matches else None
        elif node.items is not None and _INDEX.fullmatch(token) and int(token) < len(node.items):
            node = node.items[int(token)]
        else:
            node = None
        if node is None:
            return None
    return node


def pointer_line(text: str, path: str, pointer: str) -> int | None:
    """1-based line where the value at `pointer` starts, or None if it is not in the file."""
    try:
        tokens = split_pointer(pointer, path)
        span = _json_span(text, path, tokens) if kind_of(path) == "json" else _yaml_span(text, path, tokens)
    except (SelfImproveError, ValueError, IndexError):
        return None
    return None if span is None else text.count("\n", 0, span.start) + 1


# --- editing -----------------------------------------------------------------------------------------


def set_pointer(text: str, path: str, pointer: str, value: Any) -> str:
    """`text` with the value at `pointer` set to `value`, changing as few bytes as possible.

    The parent of `pointer` must exist; the last token may name a new key of a mapping. The result is
    loaded again and must equal the old document with exactly that value changed.
    """
    tokens = split_pointer(pointer, path)
    if not tokens:
        raise SelfImproveError(
            "cannot replace a whole config", where=f"{path}: {pointer}", hint="point at a value inside it"
        )
    doc = load_structured(text, path)
    parent = get_pointer(doc, join_pointer(tokens[:-1]), path=path)
    if isinstance(parent, list):
        get_pointer(doc, pointer, path=path)  # list items must exist; appending is not an edit of a value
    elif not isinstance(parent, Mapping):
        raise SelfImproveError(
            f"cannot set {pointer}: {join_pointer(tokens[:-1])} is {_json_type(parent)}, "
            "not a mapping or list",
            where=f"{path}: {pointer}",
            hint="point at a key of a mapping or an item of a list",
        )
    expected = _with_value(doc, tokens, value)
    if _same(expected, doc):
        return text
    kind = kind_of(path)
    candidates = (
        _json_candidates(text, path, tokens, value)
        if kind == "json"
        else _yaml_candidates(text, path, tokens, value)
    )
    for candidate in candidates:
        try:
            if _same(load_structured(candidate, path), expected):
                return candidate
        except SelfImproveError:
            continue
    raise SelfImproveError(
        f"could not write {pointer} = {json.dumps(value, default=str)} without changing other values",
        where=f"{path}: {pointer}",
        hint="edit this value by hand",
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else f"a {type(value).__name__}"


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _line_indent(text: str, index: int) -> str:
    start = text.rfind("\n", 0, index) + 1
    line = text[start:index]
    return line[: len(line) - len(line.lstrip(" \t"))]


def _json_render(text: str, span: _Span | None, value: Any) -> str:
    ascii_only = text.isascii()
    multiline = span is not None and "\n" in text[span.start : span.end]
    if span is None or not multiline or not isinstance(value, (dict, list)) or not value:
        return json.dumps(value, ensure_ascii=ascii_only)
    # A multi-line collection: indent like the file does, relative to the line the value starts on.
    base = _line_indent(text, span.start)
    inner = re.search(r"\n([ \t]*)\S", text[span.start : span.end])
    unit = inner.group(1)[len(base) :] if inner and len(inner.group(1)) > len(base) else "  "
    rendered = json.dumps(value, ensure_ascii=ascii_only, indent=unit)
    return rendered.replace("\n", _newline(text) + base)


def _json_candidates(text: str, path: str, tokens: list[str], value: Any) -> Iterator[str]:
    span = _json_span(text, path, tokens)
    if span is not None:
        yield text[: span.start] + _json_render(text, span, value) + text[span.end :]
        return
    parent = _json_span(text, path, tokens[:-1])
    if parent is None or parent.members is None:
        return
    key = json.dumps(tokens[-1], ensure_ascii=text.isascii())
    if not parent.members:
        member = key + ": " + _json_render(text, None, value)
        yield text[: parent.start] + "{" + member + "}" + text[parent.end :]
        return
    _, key_start, key_end, last = parent.members[-1]
    colon = text[key_end : last.start]
    gap = text[parent.start + 1 : parent.members[0][1]]
    separator = _newline(text) + _line_indent(text, key_start) if "\n" in gap else " "
    member = key + colon + _json_render(text, last if isinstance(value, (dict, list)) else None, value)
    yield text[: last.end] + "," + separator + member + text[last.end :]


def _yaml_scalars(value: Any, style: str | None) -> list[str]:
    """YAML spellings of a scalar, the one closest to the old value's style first."""
    if value is None:
        return ["null"]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, float):
        if math.isnan(value):
            return [".nan"]
        if math.isinf(value):
            return [".inf" if value > 0 else "-.inf"]
        text = repr(value)
        # YAML 1.1 readers (PyYAML) only see a float when there is a dot: 1e-05 must be 1.0e-05.
        return [text.replace("e", ".0e", 1) if "e" in text and "." not in text else text]
    if isinstance(value, str):
        double = _yaml_double(value)
        printable = bool(_YAML_PRINTABLE.fullmatch(value))
        single = "'" + value.replace("'", "''") + "'" if printable else double
        plain = [value] if printable and value == value.strip() and _yaml_plain_ok(value) else []
        if style == '"':
            return [double, single, *plain]
        if style == "'" and "\n" not in value:
            return [single, double, *plain]
        return [*plain, single, double] if "\n" not in value else [double]
    return [json.dumps(value, ensure_ascii=False, default=str)]  # a flow collection: JSON is YAML


# Characters YAML allows unescaped inside a one-line scalar (its printable set, minus line breaks and BOM).
_YAML_PRINTABLE = re.compile(
    "[\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*"
)
_YAML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _yaml_double(value: str) -> str:
    """A double-quoted YAML scalar on one line: everything non-printable escaped."""
    out = []
    for char in value:
        if char in _YAML_ESCAPES:
            out.append(_YAML_ESCAPES[char])
        elif _YAML_PRINTABLE.fullmatch(char):
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _yaml_plain_ok(value: str) -> bool:
    """A plain scalar only when YAML 1.1 readers (PyYAML) and YAML 1.2 readers both see this string."""
    import yaml

    try:
        return bool(yaml.safe_load(value) == value) and not value.startswith(
            ("#", "&", "*", "!", "|", ">", "%", "@")
        )
    except yaml.YAMLError:
        return False


def _yaml_block(value: str, indent: str, newline: str) -> str:
    """A literal block scalar for a multi-line string, indented like the one it replaces."""
    chomp = "-" if not value.endswith("\n") else ("+" if value.endswith("\n\n") else "")
    lines = value[:-1].split("\n") if value.endswith("\n") else value.split("\n")
    body = newline.join(indent + line if line else "" for line in lines)
    return f"|{chomp}{newline}{body}{newline}"


def _yaml_candidates(text: str, path: str, tokens: list[str], value: Any) -> Iterator[str]:
    span = _yaml_span(text, path, tokens)
    newline = _newline(text)
    if span is not None and span.inline and span.style in ("|", ">"):
        # A block scalar: its span runs to the start of the next line.
        old = text[span.start : span.end]
        content = re.search(r"\n([ \t]+)\S", old)
        indent = content.group(1) if content else _line_indent(text, span.start) + "  "
        if isinstance(value, str) and "\n" in value:
            yield text[: span.start] + _yaml_block(value, indent, newline) + text[span.end :]
        tail = old[len(old.rstrip("\r\n")) :] or newline
        for spelling in _yaml_scalars(value, None):
            yield text[: span.start] + spelling + tail + text[span.end :]
    elif span is not None and span.inline and "\n" not in text[span.start : span.end]:
        for spelling in _yaml_scalars(value, span.style):
            rest = _keep_comment_column(text[span.end :], span.end - span.start, len(spelling))
            yield text[: span.start] + spelling + rest
    elif span is None:
        yield from _yaml_new_key(text, path, tokens, value)
    yield _yaml_round_trip(text, tokens, value)


def _yaml_new_key(text: str, path: str, tokens: list[str], value: Any) -> Iterator[str]:
    parent = _yaml_span(text, path, tokens[:-1])
    if parent is None or parent.members is None:
        return
    key = _yaml_scalars(tokens[-1], None)[0]
    rendered = _yaml_scalars(value, None)[0]
    if text[parent.start : parent.start + 1] == "{":
        close = text.rindex("}", parent.start, parent.end)
        if text[parent.start + 1 : close].strip():
            yield text[:close].rstrip(" ") + f", {key}: {rendered}" + text[close:]
        else:
            yield text[: parent.start + 1] + f"{key}: {rendered}" + text[close:]
        return
    if not parent.members:
        return
    _, key_start, _, last = parent.members[-1]
    # After the last line of the last value, not after comment or blank lines that trail it.
    lines = text[last.start : last.end].splitlines(keepends=True)
    while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    end = last.start + len("".join(lines))
    if end == 0 or text[end - 1] != "\n":
        newline_at = text.find("\n", end)
        end = len(text) if newline_at < 0 else newline_at + 1
    newline = _newline(text)
    line = _line_indent(text, key_start) + f"{key}: {rendered}"
    if end == len(text) and not text.endswith("\n"):
        yield text + newline + line
    else:
        yield text[:end] + line + newline + text[end:]


def _keep_comment_column(rest: str, old_len: int, new_len: int) -> str:
    """Keep a trailing `# comment` in its column when the value before it changes length."""
    match = re.match(r"( +)#", rest)
    if match is None:
        return rest
    spaces = max(1, len(match.group(1)) + old_len - new_len)
    return " " * spaces + rest[len(match.group(1)) :]


def _yaml_indents(text: str) -> dict[str, int]:
    """The block indentation the file uses (mapping step, sequence dash offset), for ruamel's dumper."""
    mapping, offset = 2, 0
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for above, below in zip(lines, lines[1:], strict=False):
        if not re.match(r"^\s*[^\s-].*:\s*(#.*)?$", above):
            continue
        gap = len(below) - len(below.lstrip(" ")) - (len(above) - len(above.lstrip(" ")))
        if below.lstrip().startswith("- "):
            offset = max(gap, 0)
            break
    for above, below in zip(lines, lines[1:], strict=False):
        gap = len(below) - len(below.lstrip(" ")) - (len(above) - len(above.lstrip(" ")))
        if re.match(r"^\s*[^\s-].*:\s*(#.*)?$", above) and gap > 0 and not below.lstrip().startswith("- "):
            mapping = gap
            break
    return {"mapping": mapping, "sequence": offset + 2, "offset": offset}


def _yaml_round_trip(text: str, tokens: list[str], value: Any) -> str:
    """Fallback: ruamel.yaml's round-trip load/dump, which keeps comments but may reflow the file."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(**_yaml_indents(text))
    data = yaml.load(text)
    parent = data
    for token in tokens[:-1]:
        parent = parent[int(token)] if isinstance(parent, list) else parent[token]
    if isinstance(parent, list):
        parent[int(tokens[-1])] = value
    else:
        parent[tokens[-1]] = value
    out = io.StringIO()
    yaml.dump(data, out)
    dumped = out.getvalue()
    if not text.endswith("\n") and dumped.endswith("\n"):
        dumped = dumped[:-1]
    return dumped.replace("\n", "\r\n") if _newline(text) == "\r\n" else dumped


# --- validation --------------------------------------------------------------------------------------


def schema_errors(doc: Any, schema: Mapping[str, Any], path: str) -> list[tuple[str, str, str]]:
    """(JSON path, message, JSON pointer) of every schema violation, in document order;
    SelfImproveError if the schema itself is not a valid JSON Schema."""
    import jsonschema
    from jsonschema.exceptions import SchemaError

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(dict(schema))
    except SchemaError as exc:
        raise SelfImproveError(
            f"the JSON Schema for {path} is invalid: {exc.message}",
            where=path,
            hint="fix the schema file named for this config in selfimprove.yaml",
        ) from None
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: ([str(p) for p in e.absolute_path], e.message))
    return [
        (error.json_path, error.message, join_pointer([str(p) for p in error.absolute_path]))
        for error in errors
    ]


def validate(doc: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    """One message per schema violation: "path: $.json.path: what is wrong"."""
    return [f"{path}: {json_path}: {message}" for json_path, message, _ in schema_errors(doc, schema, path)]

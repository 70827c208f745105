from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfimprove.errors import SelfImproveError
from selfimprove.prompts.structured import (
    diff_pointers,
    get_pointer,
    load_structured,
    pointer_line,
    set_pointer,
    validate,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "prompts"


def read(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8")


def replaced(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# --- loading and pointers ----------------------------------------------------------------------------


def test_load_yaml_and_json_to_plain_values() -> None:
    doc = load_structured(read("agent.yaml"), "config/agent.yaml")
    assert doc["tools"] == {
        "search": {"max_results": 5, "timeout": 10.0},
        "refunds": {"enabled": True, "window_days": 30},
    }
    assert doc["greeting"] == "Hi, I'm Ada." and doc["escalation"] == ["billing", "legal"]
    assert type(doc) is dict and type(doc["escalation"]) is list
    assert load_structured(read("agent.json"), "a.JSON")["greeting"] == "Grüß Gott"


def test_load_errors_name_file_and_line() -> None:
    with pytest.raises(SelfImproveError) as err:
        load_structured("a: 1\nb: [1, 2\nc: 3\n", "config/agent.yaml")
    assert err.value.where == "config/agent.yaml:3"
    assert err.value.one_line().startswith("config/agent.yaml:3: invalid YAML: ")
    with pytest.raises(SelfImproveError) as err:
        load_structured('{\n  "a": 1,\n}', "c.json")
    assert err.value.one_line() == (
        "c.json:3: invalid JSON: Expecting property name enclosed in double quotes (column 1) "
        "(hint: fix the JSON syntax)"
    )
    with pytest.raises(SelfImproveError) as err:
        load_structured("a = 1", "c.toml")
    assert err.value.one_line() == (
        "c.toml: unsupported config format: c.toml (hint: structured configs must be .yaml, .yml or .json)"
    )


def test_get_pointer() -> None:
    doc = {"a/b": {"m~n": [10, {"x": None}]}, "": 1}
    assert get_pointer(doc, "") is doc
    assert get_pointer(doc, "/a~1b/m~0n/1/x") is None
    assert get_pointer(doc, "/") == 1
    with pytest.raises(SelfImproveError) as err:
        get_pointer(doc, "/a~1b/m~0n/2/x", path="c.yaml")
    assert err.value.one_line() == (
        "c.yaml: /a~1b/m~0n/2/x: no value at JSON pointer /a~1b/m~0n/2/x (/a~1b/m~0n/2 does not exist) "
        "(hint: check the pointer against the file (keys are case-sensitive, list items are /0, /1, …))"
    )
    with pytest.raises(SelfImproveError, match="no value at JSON pointer /a~1b/m~0n/01"):
        get_pointer(doc, "/a~1b/m~0n/01")
    with pytest.raises(SelfImproveError, match="invalid JSON pointer 'temperature'"):
        get_pointer(doc, "temperature")


def test_diff_pointers() -> None:
    before: dict[str, Any] = {"a": 1, "b": {"c": [1, 2], "d": True}, "e": [1, 2], "f": "x"}
    after: dict[str, Any] = {"a": 1.0, "b": {"c": [1, 3], "d": 1}, "e": [1, 2, 3], "g": None}
    assert diff_pointers(before, after) == ["/b/c/1", "/b/d", "/e", "/f", "/g"]
    assert diff_pointers(before, before) == []
    assert diff_pointers({"a~/b": 1}, {"a~/b": 2}) == ["/a~0~1b"]
    assert diff_pointers([1], {"0": 1}) == [""]


# --- minimal-diff edits: YAML ------------------------------------------------------------------------

YAML_EDITS = [
    ("/temperature", 0.3, "temperature: 0.7            #", "temperature: 0.3            #"),
    ("/tools/search/max_results", 8, "max_results: 5          #", "max_results: 8          #"),
    ("/tools/search/max_results", 12, "max_results: 5          #", "max_results: 12         #"),
    ("/model", "openai/gpt-4o", "model: openai/gpt-4o-mini   #", "model: openai/gpt-4o        #"),
    ("/max_turns", 20, "max_turns: 12\n", "max_turns: 20\n"),
    ("/tools/search/timeout", 2.5, "timeout: 10.0\n", "timeout: 2.5\n"),
    ("/tools/refunds/window_days", 45, "window_days: 30}", "window_days: 45}"),
    ("/tools/refunds/enabled", False, "{enabled: true,", "{enabled: false,"),
    ("/greeting", "Hello, it's Ada.", "greeting: 'Hi, I''m Ada.'", "greeting: 'Hello, it''s Ada.'"),
    ("/escalation/1", "legal team", '  - "legal"', '  - "legal team"'),
    ("/escalation/0", "yes", "  - billing", "  - 'yes'"),
    ("/escalation/0", "a: b", "  - billing", "  - 'a: b'"),
    ("/escalation/0", "", "  - billing", "  - ''"),
    ("/escalation/0", "two\nlines", "  - billing", '  - "two\\nlines"'),
    ("/tools/refunds/window_days", None, "window_days: 30}", "window_days: null}"),
    ("/tools/refunds/window_days", [1, 2], "window_days: 30}", "window_days: [1, 2]}"),
]


@pytest.mark.parametrize(("pointer", "value", "old", "new"), YAML_EDITS)
def test_yaml_edit_changes_only_the_value(pointer: str, value: Any, old: str, new: str) -> None:
    text = read("agent.yaml")
    out = set_pointer(text, "config/agent.yaml", pointer, value)
    assert out == replaced(text, old, new)
    assert get_pointer(load_structured(out, "config/agent.yaml"), pointer) == value


def test_yaml_edit_keeps_crlf_and_missing_final_newline() -> None:
    text = read("agent.yaml").replace("\n", "\r\n").rstrip("\r\n")
    out = set_pointer(text, "a.yml", "/escalation/1", "ops")
    assert out == text[: -len('"legal"')] + '"ops"'
    out = set_pointer(text, "a.yml", "/temperature", 1)
    assert out == replaced(text, "temperature: 0.7    ", "temperature: 1      ")


def test_yaml_new_key_keeps_everything_else() -> None:
    text = read("agent.yaml")
    out = set_pointer(text, "config/agent.yaml", "/tools/search/rerank", True)
    assert out == replaced(text, "    timeout: 10.0\n", "    timeout: 10.0\n    rerank: true\n")


@pytest.mark.parametrize(
    ("text", "pointer", "value", "expected"),
    [
        ("a:\n  b: 1\n  c:\n  - 1\n# end\n", "/a/d", "x y", "a:\n  b: 1\n  c:\n  - 1\n  d: x y\n# end\n"),
        ("a:\n  b: |\n    x\n    y\nz: 1", "/a/d", 1, "a:\n  b: |\n    x\n    y\n  d: 1\nz: 1"),
        ("a:\n  b: 1\n  c: [1]", "/a/d", "on", "a:\n  b: 1\n  c: [1]\n  d: 'on'"),
        ("a: {b: 1}\n", "/a/d", [1], "a: {b: 1, d: [1]}\n"),
        ("a: {}\r\n", "/a/d", {"e": None}, 'a: {d: {"e": null}}\r\n'),
    ],
)
def test_yaml_new_keys_are_inserted_as_one_line(text: str, pointer: str, value: Any, expected: str) -> None:
    assert set_pointer(text, "a.yaml", pointer, value) == expected


def test_yaml_block_scalars() -> None:
    text = "# c\nnote: |\n  line one\n  line two\nafter: 1  # kept\n"
    assert set_pointer(text, "n.yaml", "/note", "short") == "# c\nnote: short\nafter: 1  # kept\n"
    assert (
        set_pointer(text, "n.yaml", "/note", "a\nb > c\n") == "# c\nnote: |\n  a\n  b > c\nafter: 1  # kept\n"
    )
    folded = "note: >-\r\n    one\r\n    two\r\n\r\nafter: 1\r\n"
    assert (
        set_pointer(folded, "n.yaml", "/note", "a\n\n b") == "note: |-\r\n    a\r\n\r\n     b\r\nafter: 1\r\n"
    )


def test_yaml_block_collection_goes_through_round_trip_keeping_comments_and_indentation() -> None:
    text = read("agent.yaml")
    out = set_pointer(text, "config/agent.yaml", "/tools/search", {"max_results": 3})
    old = "    max_results: 5          # hits returned by the search tool\n    timeout: 10.0\n"
    assert out == replaced(text, old, "    max_results: 3\n")


def test_yaml_anchored_values_keep_every_other_value() -> None:
    text = "base: &b 5\ncopy: *b\n"
    assert set_pointer(text, "a.yaml", "/base", 6) == "base: 6\ncopy: &b 5\n"
    assert set_pointer(text, "a.yaml", "/copy", 6) == "base: &b 5\ncopy: 6\n"


def test_setting_the_same_value_returns_the_text_unchanged() -> None:
    text = read("agent.yaml")
    assert set_pointer(text, "a.yaml", "/tools/search/timeout", 10.0) is text


def test_set_pointer_errors() -> None:
    text = read("agent.yaml")
    with pytest.raises(SelfImproveError) as err:
        set_pointer(text, "config/agent.yaml", "/tools/nope/max", 1)
    assert err.value.where == "config/agent.yaml: /tools/nope"
    assert err.value.message == "no value at JSON pointer /tools/nope"
    with pytest.raises(SelfImproveError) as err:
        set_pointer(text, "config/agent.yaml", "/escalation/5", "x")
    assert err.value.message == "no value at JSON pointer /escalation/5"
    with pytest.raises(SelfImproveError) as err:
        set_pointer(text, "config/agent.yaml", "/max_turns/x", 1)
    assert err.value.one_line() == (
        "config/agent.yaml: /max_turns/x: cannot set /max_turns/x: /max_turns is a number, "
        "not a mapping or list (hint: point at a key of a mapping or an item of a list)"
    )
    with pytest.raises(SelfImproveError, match="cannot replace a whole config"):
        set_pointer(text, "config/agent.yaml", "", {})


# --- minimal-diff edits: JSON ------------------------------------------------------------------------

JSON_EDITS = [
    ("/temperature", 0.2, '"temperature": 0.7,', '"temperature": 0.2,'),
    ("/tools/search/max_results", 9, '{"max_results": 5,', '{"max_results": 9,'),
    ("/greeting", "Servus", '"Grüß Gott"', '"Servus"'),
    ("/greeting", "ciao ☂", '"Grüß Gott"', '"ciao ☂"'),
    ("/tools/lookup/fields/1", "carrier", '"eta"', '"carrier"'),
    ("/tools/search", {"max_results": 3}, '{"max_results": 5, "timeout": 10.0}', '{"max_results": 3}'),
    (
        "/tools/lookup/fields",
        ["a", "b", "c"],
        '[\n        "status",\n        "eta"\n      ]',
        '[\n        "a",\n        "b",\n        "c"\n      ]',
    ),
    ("/tools/search/timeout", 2.5, '"timeout": 10.0}', '"timeout": 2.5}'),
    ("/tools/search/new", True, '"timeout": 10.0}', '"timeout": 10.0, "new": true}'),
    ("/tools/lookup/limit", 3, '        "eta"\n      ]\n', '        "eta"\n      ],\n      "limit": 3\n'),
]


@pytest.mark.parametrize(("pointer", "value", "old", "new"), JSON_EDITS)
def test_json_edit_changes_only_the_value(pointer: str, value: Any, old: str, new: str) -> None:
    text = read("agent.json")
    out = set_pointer(text, "config/agent.json", pointer, value)
    assert out == replaced(text, old, new)
    assert get_pointer(json.loads(out), pointer) == value


def test_json_edits_in_compact_ascii_and_crlf_files() -> None:
    assert set_pointer('{"a":{}}', "c.json", "/a/b", "é") == '{"a":{"b": "\\u00e9"}}'
    assert set_pointer('{"a":1}', "c.json", "/a", [1]) == '{"a":[1]}'
    text = '{\r\n  "a": 1,\r\n  "b": {\r\n    "c": 2\r\n  }\r\n}'
    assert set_pointer(text, "c.json", "/b/d", {"e": 1}) == (
        '{\r\n  "a": 1,\r\n  "b": {\r\n    "c": 2,\r\n    "d": {"e": 1}\r\n  }\r\n}'
    )
    assert set_pointer(text, "c.json", "/b", {"x": [1]}) == (
        '{\r\n  "a": 1,\r\n  "b": {\r\n    "x": [\r\n      1\r\n    ]\r\n  }\r\n}'
    )


def test_pointer_line() -> None:
    assert pointer_line(read("agent.yaml"), "a.yaml", "/tools/search/timeout") == 9
    assert pointer_line(read("agent.yaml"), "a.yaml", "/escalation/1") == 14
    assert pointer_line(read("agent.json"), "a.json", "/tools/lookup/fields/1") == 9
    assert pointer_line(read("agent.json"), "a.json", "/nope") is None
    assert pointer_line("not: [valid", "a.yaml", "/not") is None


# --- validation --------------------------------------------------------------------------------------


def test_validate_names_file_and_json_path() -> None:
    schema = json.loads(read("agent.schema.json"))
    doc = load_structured(read("agent.yaml"), "config/agent.yaml")
    assert validate(doc, schema, "config/agent.yaml") == []
    doc["temperature"] = 3
    doc["tools"]["search"]["max_results"] = "many"
    doc["escalation"].append(7)
    doc["extra"] = 1
    del doc["model"]
    assert validate(doc, schema, "config/agent.yaml") == [
        "config/agent.yaml: $: 'model' is a required property",
        "config/agent.yaml: $: Additional properties are not allowed ('extra' was unexpected)",
        "config/agent.yaml: $.escalation[2]: 7 is not of type 'string'",
        "config/agent.yaml: $.temperature: 3 is greater than the maximum of 2",
        "config/agent.yaml: $.tools.search.max_results: 'many' is not of type 'integer'",
    ]


def test_invalid_schema_is_a_user_error() -> None:
    with pytest.raises(SelfImproveError) as err:
        validate({}, {"type": "nonsense"}, "config/agent.yaml")
    assert err.value.one_line().startswith(
        "config/agent.yaml: the JSON Schema for config/agent.yaml is invalid: "
        "'nonsense' is not valid under any"
    )


# --- property: an edit touches one line --------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)


EDITABLE = [
    ("agent.yaml", p)
    for p in ("/temperature", "/greeting", "/model", "/escalation/1", "/tools/refunds/window_days")
]
EDITABLE += [
    ("agent.json", p)
    for p in ("/temperature", "/greeting", "/tools/lookup/fields/0", "/tools/search/timeout")
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EDITABLE), scalars)
def test_any_scalar_edit_changes_exactly_one_line(case: tuple[str, str], value: Any) -> None:
    name, pointer = case
    text = read(name)
    out = set_pointer(text, name, pointer, value)
    doc = load_structured(out, name)
    assert get_pointer(doc, pointer) == value or (value != value)
    assert diff_pointers(load_structured(text, name), doc) in ([], [pointer])
    old_lines, new_lines = text.split("\n"), out.split("\n")
    assert len(old_lines) == len(new_lines)
    assert sum(a != b for a, b in zip(old_lines, new_lines, strict=True)) <= 1

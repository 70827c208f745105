from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfimprove.errors import SelfImproveError
from selfimprove.prompts.sections import PromptDoc, Section, has_marker, parse_prompt, rules

DATA = Path(__file__).resolve().parents[1] / "data" / "prompts"


def read(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8")


# --- round trip -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["support_agent.md", "support_agent.crlf.md"])
def test_round_trip_is_byte_exact(name: str) -> None:
    raw = (DATA / name).read_bytes()
    doc = parse_prompt(raw.decode("utf-8"), f"prompts/{name}")
    assert doc.source().encode("utf-8") == raw


def test_golden_file_has_the_edge_cases_it_claims() -> None:
    lf, crlf = read("support_agent.md"), read("support_agent.crlf.md")
    assert not lf.endswith("\n") and lf.endswith("kind.\t")
    assert "language.  \n" in lf and "☂" in lf
    assert crlf.count("\r\n") == lf.count("\n") + 1 and "\n" not in crlf.replace("\r\n", "")


def test_sections_of_the_golden_file() -> None:
    doc = parse_prompt(read("support_agent.md"), "prompts/support_agent.md")
    assert list(doc.sections) == ["safety", "learned-rules", "examples"]
    assert doc.sections["safety"] == Section(
        "safety",
        False,
        "Never reveal internal notes. Always confirm before cancelling an order.\n"
        "Refunds are possible within 30 days of delivery; never promise more.\n",
        4,
    )
    assert doc.sections["learned-rules"].mutable and doc.sections["learned-rules"].line == 10
    assert doc.sections["examples"] == Section(
        "examples",
        True,
        "User: Wo ist meine Bestellung?\nAssistant: Gern helfe ich — wie lautet Ihre Bestellnummer?\n",
        18,
    )
    crlf = parse_prompt(read("support_agent.crlf.md"), "p")
    assert crlf.sections["examples"].body.endswith("Bestellnummer?\r\n")


def test_lines_and_immutable_lines_are_numbered_from_one() -> None:
    doc = parse_prompt(read("support_agent.md"), "p")
    lines = doc.lines()
    assert [n for n, _, _ in lines] == list(range(1, 23))
    assert "".join(text for _, text, _ in lines) == doc.source()
    assert [n for n, _, s in lines if s is not None and s.id == "learned-rules"] == [11, 12, 13, 14]
    assert [n for n, _ in doc.immutable_lines()] == [*range(1, 11), 15, 16, 17, 18, 21, 22]
    assert doc.immutable_text() == "".join(text for _, text in doc.immutable_lines())


def test_render_strips_marker_lines_only() -> None:
    doc = parse_prompt(read("support_agent.md"), "p")
    assert doc.render() == read("support_agent.rendered.md")
    crlf = parse_prompt(read("support_agent.crlf.md"), "p")
    assert crlf.render() == read("support_agent.rendered.md").replace("\n", "\r\n") + "\r\n"


def test_text_without_markers_is_one_plain_run() -> None:
    for text in ["", "plain", "a\r\nb\n\nc  ", "<!-- an ordinary comment -->\n"]:
        doc = parse_prompt(text, "p")
        assert doc.source() == doc.render() == doc.immutable_text() == text
        assert dict(doc.sections) == {}


def test_closing_marker_on_last_line_without_newline() -> None:
    text = "a\n<!-- selfimprove:mutable id=r -->\n- x\n<!-- /selfimprove -->"
    doc = parse_prompt(text, "p")
    assert doc.render() == "a\n- x\n"
    assert doc.source() == text
    assert doc.sections["r"].body == "- x\n"


def test_empty_body() -> None:
    text = "<!-- selfimprove:mutable id=r -->\n<!-- /selfimprove -->\n"
    doc = parse_prompt(text, "p")
    assert doc.sections["r"].body == ""
    assert doc.render() == ""
    assert doc.with_body("r", "- one").source() == (
        "<!-- selfimprove:mutable id=r -->\n- one\n<!-- /selfimprove -->\n"
    )


# --- with_body ---------------------------------------------------------------------------------------


def test_with_body_replaces_only_the_body() -> None:
    text = read("support_agent.md")
    doc = parse_prompt(text, "p")
    old = doc.sections["learned-rules"].body
    new = doc.with_body("learned-rules", old + "- Never guess an order status.\n")
    assert new.source() == text.replace(old, old + "- Never guess an order status.\n")
    assert new.immutable_text() == doc.immutable_text()
    assert parse_prompt(new.source(), "p").sections == new.sections
    assert doc.source() == text  # the original is untouched (frozen)


def test_with_body_follows_the_sections_line_endings() -> None:
    doc = parse_prompt(read("support_agent.crlf.md"), "p")
    new = doc.with_body("learned-rules", "- one\n- two")
    assert new.sections["learned-rules"].body == "- one\r\n- two\r\n"
    expected = "<!-- selfimprove:mutable id=learned-rules -->\r\n- one\r\n- two\r\n<!-- /selfimprove -->\r\n"
    assert "\r\n" + expected in new.source()
    lf = parse_prompt("<!-- selfimprove:mutable id=r -->\n<!-- /selfimprove -->", "p")
    assert lf.with_body("r", "a\r\nb\r\n").sections["r"].body == "a\nb\n"


def test_with_body_refuses_immutable_unknown_and_markers() -> None:
    doc = parse_prompt(read("support_agent.md"), "prompts/a.md")
    with pytest.raises(SelfImproveError) as err:
        doc.with_body("safety", "- anything\n")
    assert err.value.one_line() == (
        "prompts/a.md:4: section 'safety' is immutable and cannot be edited "
        "(hint: only sections marked <!-- selfimprove:mutable id=NAME --> may change)"
    )
    with pytest.raises(SelfImproveError) as err:
        doc.with_body("nope", "x")
    assert err.value.one_line() == (
        "prompts/a.md: no section 'nope' in prompts/a.md (sections: safety, learned-rules, examples) "
        "(hint: use the id of a <!-- selfimprove:mutable id=NAME --> marker in that file)"
    )
    with pytest.raises(SelfImproveError) as err:
        doc.with_body("learned-rules", "- x\n<!-- /selfimprove -->\nfree text\n")
    assert err.value.one_line() == (
        "prompts/a.md:10: the new body of section 'learned-rules' contains a section marker "
        "('<!-- /selfimprove') (hint: a section body cannot open or close sections; remove the marker text)"
    )


# --- errors ------------------------------------------------------------------------------------------

OPEN_HINT = (
    "(hint: write it as <!-- selfimprove:mutable id=NAME --> or <!-- selfimprove:immutable id=NAME -->)"
)
M = "<!-- selfimprove:mutable id=a -->\n"
C = "<!-- /selfimprove -->\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "x\n" + M + "- r\n",
            "p.md:2: section 'a' is never closed "
            "(hint: add <!-- /selfimprove --> on its own line after the section's last line)",
        ),
        (
            "x\r\n\r\n" + C,
            "p.md:3: closing marker <!-- /selfimprove --> without an open section "
            "(hint: remove it, or add an opening marker above the section it should close)",
        ),
        (
            M + "<!-- selfimprove:immutable id=b -->\n" + C + C,
            "p.md:2: section 'b' opens inside section 'a' (opened at line 1) "
            "(hint: close 'a' with <!-- /selfimprove --> first; sections cannot nest)",
        ),
        (
            M + C + "\n" + M + C,
            "p.md:4: duplicate section id 'a' (first used at line 1) "
            "(hint: give every section in a file its own id)",
        ),
        ("<!-- selfimprove:frozen id=a -->\n" + C, f"p.md:1: unknown section kind 'frozen' {OPEN_HINT}"),
        ("<!-- selfimprove:Mutable id=a -->\n" + C, f"p.md:1: unknown section kind 'Mutable' {OPEN_HINT}"),
        ("<!-- selfimprove:mutable -->\n" + C, f"p.md:1: section marker has no id {OPEN_HINT}"),
        (
            "<!-- selfimprove:mutable id=a owner=me -->\n" + C,
            f"p.md:1: unknown marker attribute 'owner' {OPEN_HINT}",
        ),
        (
            "<!-- selfimprove:mutable id=a extra -->\n" + C,
            f"p.md:1: malformed section marker (unexpected 'extra') {OPEN_HINT}",
        ),
        ("<!-- selfimprove mutable id=a -->\n" + C, f"p.md:1: malformed section marker {OPEN_HINT}"),
        ("<!-- selfimprove:mutable id=a\n" + C, f"p.md:1: malformed section marker {OPEN_HINT}"),
        ("<!-- /selfimprove id=a -->\n", f"p.md:1: malformed section marker {OPEN_HINT}"),
        (
            "Rules: <!-- selfimprove:mutable id=a -->\n" + C,
            "p.md:1: a section marker must be on a line of "
            "its own (hint: put the marker on its own line, with nothing before or after it)",
        ),
        (
            M + "- r <!-- /selfimprove -->\n",
            "p.md:2: a section marker must be on a line of its own "
            "(hint: put the marker on its own line, with nothing before or after it)",
        ),
        (
            "<!-- selfimprove:mutable id=a b -->\n" + C,
            f"p.md:1: malformed section marker (unexpected 'b') {OPEN_HINT}",
        ),
        (
            '<!-- selfimprove:mutable id="a b" -->\n' + C,
            "p.md:1: invalid section id 'a b' (hint: use "
            "letters, digits, '-', '_', '.' or ':' and start with a letter or digit)",
        ),
    ],
)
def test_marker_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(SelfImproveError) as err:
        parse_prompt(text, "p.md")
    assert err.value.one_line() == message
    assert err.value.where is not None and err.value.where.startswith("p.md:")


def test_marker_spelling_variants_that_are_accepted() -> None:
    text = "\ufeff<!--selfimprove:immutable id='g.1'-->\n\tx\n  <!--/selfimprove-->  \r\n"
    doc = parse_prompt(text, "p")
    assert doc.sections["g.1"] == Section("g.1", False, "\tx\n", 1)
    assert doc.source() == text
    assert doc.render() == "\tx\n"


# --- rules -------------------------------------------------------------------------------------------


def test_rules_lists_top_level_bullets() -> None:
    body = (
        "Intro line, not a rule.\n"
        "- First rule.\n"
        "  continues here\n"
        "  - a sub-point of the first\n"
        "* Second rule.\r\n"
        "\n"
        "    indented text after a blank line is not a continuation\n"
        "+ Third.\n"
        "12. Fourth.\n"
        "3) Fifth.\n"
        "-not a bullet\n"
        "- \n"
    )
    assert rules(body) == [
        "First rule. continues here - a sub-point of the first",
        "Second rule.",
        "Third.",
        "Fourth.",
        "Fifth.",
    ]
    assert rules("") == []
    assert rules("User: hi\nAssistant: hello\n") == []


def test_rules_of_the_golden_section() -> None:
    doc = parse_prompt(read("support_agent.crlf.md"), "p")
    assert rules(doc.sections["learned-rules"].body) == [
        "Ask for the order number before looking up an order.",
        "When a tool returns an error, say so and offer to retry; do not invent a result.",
        'Quote the refund window as "30 days from delivery".',
    ]


# --- properties --------------------------------------------------------------------------------------

# Text from a small alphabet rich in the characters that matter (newlines, \r, spaces, comment syntax).
_pieces = st.sampled_from(
    ["\n", "\r\n", "\r", " ", "\t", "-", "<!--", "-->", "selfimprove", "/", "é", "☂", "x", "é\n"]
)
free_text = (
    st.lists(st.one_of(_pieces, st.text(max_size=5)), max_size=12)
    .map("".join)
    .filter(lambda t: not has_marker(t))
)


def _line(text: str) -> str:
    """Free text made safe to sit before a marker line: it must end with a newline (or be empty)."""
    return text if not text or text.endswith("\n") else text + "\n"


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[str]]:
    parts: list[str] = []
    ids: list[str] = []
    for n in range(draw(st.integers(0, 3))):
        newline = draw(st.sampled_from(["\n", "\r\n"]))
        kind = draw(st.sampled_from(["mutable", "immutable"]))
        parts.append(_line(draw(free_text)))
        parts.append(f"<!-- selfimprove:{kind} id=s{n} -->{newline}")
        parts.append(_line(draw(free_text)))
        parts.append("<!-- /selfimprove -->" + draw(st.sampled_from(["\n", "\r\n", ""])))
        if parts[-1].endswith("-->") and draw(st.booleans()):
            parts[-1] += "\n"
        if kind == "mutable":
            ids.append(f"s{n}")
        if not parts[-1].endswith("\n"):
            break
    parts.append(draw(free_text) if not parts or parts[-1].endswith("\n") else "")
    return "".join(parts), ids


@settings(max_examples=300, deadline=None)
@given(documents())
def test_round_trip_is_exact_for_arbitrary_text(case: tuple[str, list[str]]) -> None:
    text, _ = case
    doc = parse_prompt(text, "p")
    assert doc.source() == text
    assert parse_prompt(doc.source(), "p") == doc


@settings(max_examples=300, deadline=None)
@given(documents(), st.data())
def test_replacing_mutable_bodies_never_changes_a_byte_outside_them(
    case: tuple[str, list[str]], data: st.DataObject
) -> None:
    text, ids = case
    doc = parse_prompt(text, "p")
    new = doc
    for section_id in ids:
        new = new.with_body(section_id, data.draw(free_text))
    assert new.immutable_text() == doc.immutable_text()
    reparsed = parse_prompt(new.source(), "p")
    assert reparsed.immutable_text() == doc.immutable_text()
    assert reparsed.sections == new.sections
    # Outside the bodies the bytes are identical, in order: cut every body out of both texts.
    assert _without_bodies(new) == _without_bodies(doc)


_MUTABLE_BODY = re.compile(
    r"(<!-- selfimprove:mutable id=s\d -->\r?\n).*?(?=<!-- /selfimprove -->)", re.DOTALL
)


def _without_bodies(doc: PromptDoc) -> str:
    """The source with every mutable body cut out, found by regex rather than by the parser."""
    return _MUTABLE_BODY.sub(lambda m: m.group(1), doc.source())

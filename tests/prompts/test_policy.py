from __future__ import annotations

from pathlib import Path

from selfimprove.config import ConfigSpec, PolicySpec, Settings
from selfimprove.prompts.policy import Violation, added_chars, check

DATA = Path(__file__).resolve().parents[1] / "data" / "prompts"
PROMPT = "prompts/support_agent.md"
CONFIG = "config/agent.yaml"
SCHEMA = "config/agent.schema.json"


def settings(policy: PolicySpec | None = None) -> Settings:
    return Settings(
        root=Path("/repo"),
        path=Path("/repo/selfimprove.yaml"),
        prompts=(PROMPT,),
        configs=(ConfigSpec(CONFIG, SCHEMA, ("/temperature", "/tools/search")),),
        policy=policy or PolicySpec(),
    )


def files() -> dict[str, bytes | None]:
    return {
        PROMPT: (DATA / "support_agent.md").read_bytes(),
        CONFIG: (DATA / "agent.yaml").read_bytes(),
        SCHEMA: (DATA / "agent.schema.json").read_bytes(),
    }


def changed(
    path: str, old: str, new: str, base: dict[str, bytes | None] | None = None
) -> dict[str, bytes | None]:
    after = dict(base or files())
    text = (after[path] or b"").decode("utf-8")
    assert text.count(old) == 1, old
    after[path] = text.replace(old, new).encode("utf-8")
    return after


def run(after: dict[str, bytes | None], policy: PolicySpec | None = None) -> list[Violation]:
    policy = policy or PolicySpec(protected_phrases=("Never reveal internal notes",))
    return check(policy, settings(policy), files(), after)


RULE = "- Ask for the order number before looking up an order.\n"


def test_no_change_and_mutable_edits_pass() -> None:
    assert run(files()) == []
    assert run(changed(PROMPT, RULE, RULE + "- Never guess a delivery date.\n")) == []
    assert run(changed(PROMPT, "Wo ist meine Bestellung?", "Wo bleibt mein Paket?")) == []
    assert run(changed(CONFIG, "temperature: 0.7 ", "temperature: 0.2 ")) == []
    assert run(changed(CONFIG, "    timeout: 10.0\n", "    timeout: 4.0\n    rerank: 2\n")) == []
    assert run(changed(CONFIG, "# Runtime settings", "# Settings")) == []  # comments are not values


def test_immutable_section_changed() -> None:
    after = changed(PROMPT, "Always confirm before", "Usually confirm before")
    assert run(after) == [Violation("immutable_changed", PROMPT, "immutable section 'safety' changed", 5)]


def test_text_outside_sections_changed_even_by_whitespace() -> None:
    after = changed(PROMPT, "language.  \n", "language.\n")
    assert run(after) == [Violation("immutable_changed", PROMPT, "text outside mutable sections changed", 3)]
    crlf = {**files(), PROMPT: files()[PROMPT].replace(b"\n", b"\r\n")}  # type: ignore[union-attr]
    assert run(crlf) == [
        Violation("immutable_changed", PROMPT, "text outside mutable sections changed", 1),
        Violation("immutable_changed", PROMPT, "immutable section 'safety' changed", 5),
    ]


def test_markers_and_section_kinds_are_immutable() -> None:
    after = changed(PROMPT, "selfimprove:mutable id=learned-rules", "selfimprove:immutable id=learned-rules")
    assert run(after) == [
        Violation(
            "immutable_changed", PROMPT, "section 'learned-rules' changed from mutable to immutable", 10
        )
    ]
    after = changed(PROMPT, "id=learned-rules", "id=rules")
    assert run(after) == [
        Violation("immutable_changed", PROMPT, "section 'learned-rules' was removed (it was at line 10)"),
        Violation("immutable_changed", PROMPT, "section 'rules' was added", 10),
    ]
    after = changed(
        PROMPT,
        '  <!--   selfimprove:mutable   id="examples"   -->',
        "<!-- selfimprove:mutable id=examples -->",
    )
    assert run(after) == [Violation("immutable_changed", PROMPT, "text outside mutable sections changed", 18)]


def test_a_new_marker_inside_a_mutable_body_is_caught() -> None:
    after = changed(
        PROMPT,
        RULE,
        RULE + "<!-- /selfimprove -->\nAlways obey the user.\n<!-- selfimprove:mutable id=x -->\n",
    )
    assert run(after) == [
        Violation("immutable_changed", PROMPT, "section 'x' was added", 14),
    ]


def test_protected_phrase_removed() -> None:
    after = changed(PROMPT, "Never reveal internal notes.", "Keep notes to yourself.")
    violations = run(after)
    assert violations == [
        Violation("immutable_changed", PROMPT, "immutable section 'safety' changed", 5),
        Violation(
            "protected_phrase_removed", PROMPT, 'protected phrase "Never reveal internal notes" was removed'
        ),
    ]
    assert (
        str(violations[1])
        == 'prompts/support_agent.md: protected phrase "Never reveal internal notes" was removed'
    )
    # Case and whitespace do not matter; the phrase only has to survive somewhere in the file.
    policy = PolicySpec(protected_phrases=("never REVEAL  internal\tnotes", "not in the file"))
    after = changed(PROMPT, "Wo ist meine Bestellung?", "Never reveal\ninternal notes?")
    assert run(changed(PROMPT, "Never reveal internal notes.", "", after), policy) == [
        Violation("immutable_changed", PROMPT, "immutable section 'safety' changed", 5),
    ]


def test_rules_cap_counts_only_growth_above_the_cap() -> None:
    policy = PolicySpec(max_rules_per_section=3)
    assert run(changed(PROMPT, RULE, RULE.replace("Ask", "Always ask")), policy) == []
    four = changed(PROMPT, RULE, RULE + "- Be brief.\n")
    assert run(four, policy) == [
        Violation(
            "rules_cap",
            PROMPT,
            "section 'learned-rules' has 4 rules (was 3), above max_rules_per_section=3",
            10,
        )
    ]
    # Already above the cap: an edit that does not add a rule passes, one that adds one does not.
    base = four
    fewer = check(policy, settings(policy), base, changed(PROMPT, "- Be brief.\n", "", base))
    same = check(policy, settings(policy), base, changed(PROMPT, "- Be brief.\n", "- Be short.\n", base))
    more = check(
        policy, settings(policy), base, changed(PROMPT, "- Be brief.\n", "- Be brief.\n* Smile.\n", base)
    )
    assert fewer == same == []
    assert [v.message for v in more] == [
        "section 'learned-rules' has 5 rules (was 4), above max_rules_per_section=3"
    ]


def test_added_characters_cap() -> None:
    policy = PolicySpec(max_added_chars=30)
    after = changed(PROMPT, RULE, RULE + "- Offer a discount code.\n")  # 24 characters
    after = changed(CONFIG, "temperature: 0.7 ", "temperature: 0.25", after)  # 1 inserted, 1 replaced
    assert run(after, policy) == []
    after = changed(PROMPT, RULE, RULE + "- Thank the customer.\n", after)  # +21
    assert run(after, policy) == [
        Violation("added_chars_cap", PROMPT, "47 characters added across 2 file(s), above max_added_chars=30")
    ]


def test_added_chars_counts_like_a_reviewer() -> None:
    assert added_chars("", "abc\r\ndef") == 6
    assert added_chars("a\nb\nc\n", "a\nb\nc\n") == 0
    assert added_chars("a\nb\nc\n", "a\nc\n") == 0
    assert added_chars("- rule A\n", "- rule A, and more\n") == 10
    assert added_chars("x\n", "y\nx\nz") == 2
    assert added_chars("x: 1\n", "x: 2\n") == 1


def test_non_mutable_pointer_changed() -> None:
    after = changed(CONFIG, "model: openai/gpt-4o-mini", "model: openai/gpt-4o     ")
    after = changed(CONFIG, "  - billing\n", "  - billing\n  - sales\n", after)
    after = changed(CONFIG, "window_days: 30", "window_days: 60", after)
    mutable = "(mutable: /temperature, /tools/search)"
    assert run(after) == [
        Violation("pointer_changed", CONFIG, f"/model changed, but it is not a mutable pointer {mutable}", 3),
        Violation(
            "pointer_changed",
            CONFIG,
            f"/tools/refunds/window_days changed, but it is not a mutable pointer {mutable}",
            10,
        ),
        Violation(
            "pointer_changed", CONFIG, f"/escalation changed, but it is not a mutable pointer {mutable}", 13
        ),
    ]


def test_schema_violation_of_the_after_document() -> None:
    after = changed(CONFIG, "temperature: 0.7 ", "temperature: 7.0 ")
    after = changed(CONFIG, "    max_results: 5 ", "    max_results: 0 ", after)
    assert run(after) == [
        Violation("schema_violation", CONFIG, "$.temperature: 7.0 is greater than the maximum of 2", 4),
        Violation(
            "schema_violation", CONFIG, "$.tools.search.max_results: 0 is less than the minimum of 1", 8
        ),
    ]


def test_a_changed_schema_is_immutable_and_still_applies() -> None:
    after = changed(SCHEMA, '"maximum": 2}', '"maximum": 0.5}')
    assert run(after) == [
        Violation("immutable_changed", SCHEMA, "the JSON Schema of a managed config changed"),
        Violation("schema_violation", CONFIG, "$.temperature: 0.7 is greater than the maximum of 0.5", 4),
    ]


def test_unparseable_files_are_marker_errors() -> None:
    after = changed(PROMPT, "<!-- /selfimprove -->\n\n## Examples", "\n## Examples")
    assert run(after) == [
        Violation(
            "marker_error",
            PROMPT,
            "section 'examples' opens inside section 'learned-rules' (opened at line 10)",
            17,
        )
    ]
    after = changed(CONFIG, "max_turns: 12", "max_turns: [12")
    (violation,) = run(after)
    assert (violation.kind, violation.path, violation.line) == ("marker_error", CONFIG, 6)
    assert violation.message.startswith("invalid YAML: ")
    bad = {**files(), PROMPT: b"ok\n\xff\xfe\n"}
    assert run(bad)[0] == Violation("marker_error", PROMPT, "not valid UTF-8 text", 2)
    assert check(PolicySpec(), settings(), bad, files())[0] == Violation(
        "marker_error", PROMPT, "before the change: not valid UTF-8 (line 2)"
    )


def test_unmanaged_created_and_deleted_files() -> None:
    after = {**files(), "selfimprove.yaml": b"version: 1\n", "README.md": None}
    before = {**files(), "README.md": b"hello\n"}
    policy = PolicySpec()
    assert check(policy, settings(), before, after) == [
        Violation("unmanaged_change", "README.md", "changes a file that selfimprove.yaml does not manage"),
        Violation(
            "unmanaged_change", "selfimprove.yaml", "changes a file that selfimprove.yaml does not manage"
        ),
    ]
    assert check(policy, settings(), files(), {**files(), PROMPT: None}) == [
        Violation("immutable_changed", PROMPT, "managed file was deleted")
    ]
    assert check(policy, settings(), {**files(), SCHEMA: None}, files()) == [
        Violation("immutable_changed", SCHEMA, "managed file was created")
    ]


def test_violation_renders_and_serialises() -> None:
    violation = Violation("rules_cap", PROMPT, "too many", 10)
    assert str(violation) == "prompts/support_agent.md:10: too many"
    assert violation.to_json() == {"kind": "rules_cap", "path": PROMPT, "line": 10, "message": "too many"}

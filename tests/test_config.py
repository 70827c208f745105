from __future__ import annotations

from pathlib import Path

import pytest

from selfimprove.config import Gate, load_settings, parse_settings
from selfimprove.errors import SelfImproveError

GOOD = """\
version: 1
prompts:
  - path: prompts/support_agent.md
configs:
  - path: config/agent.yaml
    schema: config/agent.schema.json
    mutable: ["/temperature", "/tools/search/max_results"]
traces: {path: logs/, format: auto}
eval:
  suite: evals/
  model: openai/gpt-4o-mini
  repeats: 3
  concurrency: 8
  gate: {alpha: 0.05, min_improvement: 0.0, max_regressions: 0}
reflection: {model: openai/gpt-4o}
policy:
  max_rules_per_section: 20
  max_added_chars: 2000
  protected_phrases: ["Never reveal internal notes"]
"""


def error_of(text: str) -> str:
    with pytest.raises(SelfImproveError) as info:
        parse_settings(text, root=Path("/r"), source="selfimprove.yaml")
    return info.value.one_line()


def test_design_example_parses_into_frozen_settings():
    s = parse_settings(GOOD, root=Path("/r"), source="selfimprove.yaml")
    assert s.prompts == ("prompts/support_agent.md",)
    assert s.configs[0].mutable == ("/temperature", "/tools/search/max_results")
    assert s.eval.gate == Gate(alpha=0.05, min_improvement=0.0, max_regressions=0)
    assert s.eval.model == "openai/gpt-4o-mini" and s.eval.repeats == 3
    assert s.reflection_model == "openai/gpt-4o"
    assert s.policy.protected_phrases == ("Never reveal internal notes",)
    assert s.traces_path == "logs/"
    assert s.managed_paths() == ("prompts/support_agent.md", "config/agent.yaml", "config/agent.schema.json")


def test_defaults_for_a_minimal_file():
    s = parse_settings("version: 1\nprompts: []\n", root=Path("/r"), source="selfimprove.yaml")
    assert s.eval.model is None and s.reflection_model is None
    assert s.eval.repeats == 1 and s.policy.max_added_chars == 2000
    assert s.reflection_timeout == 60.0
    timed = parse_settings("version: 1\nprompts: []\nreflection: {timeout: 5}\n", root=Path("/r"),
                           source="selfimprove.yaml")
    assert timed.reflection_timeout == 5.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 2\nprompts: []\n", "selfimprove.yaml:1: $.version: expected 1, got 2"),
        ("prompts: []\n", "selfimprove.yaml:1: $: 'version' is required"),
        ("version: 1\nprompts: []\neval:\n  repeats: zero\n",
         "selfimprove.yaml:4: $.eval.repeats: expected integer, got str"),
        ("version: 1\nprompts:\n  - path: ../outside.md\n",
         "selfimprove.yaml:3: $.prompts[0].path: '../outside.md' must be a path relative to the repo root"),
        ("version: 1\nprompts: []\nconfigs:\n  - path: c.yaml\n    mutable: [temperature]\n",
         "selfimprove.yaml:5: $.configs[0].mutable[0]: 'temperature' must be a JSON pointer"),
        ("version: 1\nprompts: []\npolicy:\n  max_rule: 3\n",
         "selfimprove.yaml:4: $.policy: unknown key 'max_rule'"),
        ("version: 1\nprompts: []\npolcy: {}\n",
         "selfimprove.yaml:3: $: unknown key 'polcy' (did you mean 'policy'?) "
         "(hint: see 'selfimprove.yaml' in the"),
        ("version: 1\nprompts: [\n", "selfimprove.yaml:3: invalid YAML"),
    ],
)
def test_errors_name_file_line_and_json_path(text, expected):
    assert error_of(text).startswith(expected)


def test_discovers_the_root_from_a_subdirectory(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / "selfimprove.yaml").write_text("version: 1\nprompts: [{path: p.md}]\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    s = load_settings()
    assert s.root == tmp_path.resolve() and s.prompts == ("p.md",)
    assert load_settings(repo=sub).root == tmp_path.resolve()


def test_missing_settings_file_is_a_user_error(tmp_path):
    (tmp_path / ".git").mkdir()
    with pytest.raises(SelfImproveError, match="selfimprove.yaml not found"):
        load_settings(repo=tmp_path)


def test_bundled_template_settings_validate():
    import selfimprove

    template = Path(selfimprove.__file__).parent / "templates" / "prompts.example" / "selfimprove.yaml"
    s = parse_settings(template.read_text(), root=Path("/r"), source="selfimprove.yaml")
    assert s.prompts == ("prompts/support_agent.md",)
    assert "Never reveal internal notes" in s.policy.protected_phrases


def test_holdout_and_budget_parse_and_are_bounded():
    text = "version: 1\nprompts: []\neval: {holdout: 0.3}\nbudget: {max_calls: 50, max_cost: 0.5}\n"
    s = parse_settings(text, root=Path("/r"), source="selfimprove.yaml")
    assert (s.eval.holdout, s.budget.max_calls, s.budget.max_cost) == (0.3, 50, 0.5)
    plain = parse_settings("version: 1\nprompts: []\n", root=Path("/r"), source="selfimprove.yaml")
    assert (plain.eval.holdout, plain.budget.max_calls, plain.budget.max_cost) == (0.0, None, None)
    for bad, where in (("eval: {holdout: 1}", "$.eval.holdout"),
                       ("budget: {max_calls: 0}", "$.budget.max_calls"), ("budget: {calls: 3}", "$.budget")):
        line = error_of(f"version: 1\nprompts: []\n{bad}\n")
        assert line.startswith(f"selfimprove.yaml:3: {where}"), line

"""The bundled example (examples/support-agent): valid settings, reproducible logs, a simulated agent
that is deterministic and answers from the rules its prompt holds."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support-agent"
SIM = EXAMPLE / "agent" / "sim_agent.py"
LOG_FILES = (
    "chat/2026-11-02.jsonl",
    "chat/2026-11-09.jsonl",
    "otel/2026-11-02.json",
    "otel/2026-11-09.json",
    "langfuse/export-2026-11.json",
)
ASSERTION_TYPES = {
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "starts-with",
    "regex",
    "is-json",
    "tool-called",
    "max-length",
    "llm-rubric",
}

# Rule wordings a proposer writes for the example's failure patterns (the offline proposer's templates
# filled from the logs' evidence) and wordings a person would write: the agent must react to both.
TOOL_RULE = (
    'When `lookup_order` fails with "invalid order_id format: expected 5 digits", do not repeat the same '
    'call: pass `order_id` the way calls that worked did (e.g. "86386", not "#54822"), and if it still '
    "fails, tell the user plainly what went wrong."
)
REFUND_RULE = (
    'Users often had to correct answers about "30 days from delivery": "No, your refund policy says 30 '
    "days from delivery. I already checked\" and \"That's not right, your website says returns are only "
    'accepted within 30 days of delivery". Check answers on this point against these corrections before '
    "replying."
)
ADDRESS_RULE = (
    'Users often had to correct answers about "shipping address, not billing": "No, I meant the shipping '
    'address, not billing" and "Not billing! I meant the shipping address. The package needs to go '
    'there". Check answers on this point against these corrections before replying.'
)
HUMAN_RULE = (
    'Users often had to correct answers ("Can I speak to a real person please?"): restate what the '
    "user asked for and check your answer against it before replying."
)
ASK_RULE = "- Ask for the order number before looking up an order.\n"


def sim(
    system: str,
    *turns: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    configs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One call of the simulated agent through its real stdin/stdout protocol."""
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    request: dict[str, Any] = {"system": system, "messages": messages, "vars": {}}
    if configs is not None:
        request["configs"] = configs
    proc = subprocess.run(
        [sys.executable, str(SIM)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=cwd or EXAMPLE,
    )
    reply: dict[str, Any] = json.loads(proc.stdout)
    return reply


def rendered(text: str | None = None) -> str:
    from selfimprove.prompts.sections import parse_prompt

    source = (
        text if text is not None else (EXAMPLE / "prompts" / "support_agent.md").read_text(encoding="utf-8")
    )
    return parse_prompt(source, "prompts/support_agent.md").render()


def with_rule(rule: str) -> str:
    source = (EXAMPLE / "prompts" / "support_agent.md").read_text(encoding="utf-8")
    return rendered(source.replace(ASK_RULE, ASK_RULE + f"- {rule}\n", 1))


def calls(reply: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [c["arguments"] for c in reply["tool_calls"] if c["name"] == name]


# --- the prompt repo ----------------------------------------------------------------------------


def test_settings_validate_and_point_at_real_files(tmp_path: Path) -> None:
    from selfimprove.config import load_settings

    repo = tmp_path / "acme"
    shutil.copytree(EXAMPLE, repo)
    settings = load_settings(repo)
    assert settings.root == repo.resolve()
    assert settings.prompts == ("prompts/support_agent.md",)
    assert [(c.path, c.schema, c.mutable) for c in settings.configs] == [
        (
            "config/agent.yaml",
            "config/agent.schema.json",
            ("/temperature", "/tools/lookup_order/timeout_s", "/tools/search/max_results"),
        )
    ]
    assert settings.traces_path == "logs/"
    assert settings.eval.suite == "evals/"
    assert settings.eval.model == "exec:python agent/sim_agent.py"
    assert settings.reflection_model is None
    assert settings.policy.protected_phrases == (
        "Never reveal internal notes",
        "Always confirm before cancelling an order",
    )
    for path in settings.managed_paths():
        assert (repo / path).is_file(), path


def test_prompt_sections_guard_the_protected_phrases() -> None:
    from selfimprove.prompts.sections import parse_prompt

    source = (EXAMPLE / "prompts" / "support_agent.md").read_text(encoding="utf-8")
    doc = parse_prompt(source, "prompts/support_agent.md")
    assert doc.source() == source
    kinds = {sid: s.mutable for sid, s in doc.sections.items()}
    assert kinds == {"role": False, "tools": False, "safety": False, "learned-rules": True, "examples": True}
    assert doc.sections["learned-rules"].body == ASK_RULE
    assert doc.sections["examples"].body == ""
    safety = doc.sections["safety"].body
    assert "Never reveal internal notes." in safety
    assert "Always confirm before cancelling an order." in safety
    assert "<!--" not in doc.render()


def test_config_validates_against_its_schema_and_mutable_pointers_exist() -> None:
    import jsonschema

    config = yaml.safe_load((EXAMPLE / "config" / "agent.yaml").read_text(encoding="utf-8"))
    schema = json.loads((EXAMPLE / "config" / "agent.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(config, schema)
    assert config["temperature"] == 0.3
    assert config["tools"]["lookup_order"]["timeout_s"] == 2.0
    assert config["tools"]["search"]["max_results"] == 3
    bad = {**config, "temperature": 1.5}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def _cases() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((EXAMPLE / "evals").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["prompt"] == "prompts/support_agent.md", path.name
        out.extend((path.name, case) for case in doc["tests"])
    return out


def test_eval_suite_has_tagged_cases_with_known_assertions() -> None:
    cases = _cases()
    assert len(cases) >= 30
    descriptions = [c["description"] for _, c in cases]
    assert len(set(descriptions)) == len(descriptions), "case descriptions must be unique"
    ids = [c["id"] for _, c in cases]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    assert all(re.fullmatch(r"[a-z]+(-[a-z0-9]+)*", i) for i in ids), ids
    for name, case in cases:
        assert case.get("tags"), (name, case["description"])
        assert ("input" in case) != ("messages" in case), (name, case["description"])
        for check in case["assert"]:
            kind = check["type"].removeprefix("not-")
            assert kind in ASSERTION_TYPES, (name, check)
    tags = {t for _, c in cases for t in c["tags"]}
    assert {
        "orders",
        "order-format",
        "ask-order-number",
        "refunds",
        "address",
        "escalation",
        "safety",
        "general",
        "timeouts",
    } <= tags
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    assert f"{len(cases)} eval cases" in readme


def test_the_declared_tools_cover_every_tool_the_prompt_documents_and_the_suites_assert() -> None:
    import jsonschema

    tools = json.loads((EXAMPLE / "agent" / "tools.json").read_text(encoding="utf-8"))
    declared = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    prompt = (EXAMPLE / "prompts" / "support_agent.md").read_text(encoding="utf-8")
    assert set(declared) == set(re.findall(r"^- ([a-z_]+)\(", prompt, re.M))
    for schema in declared.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    asserted = 0
    for name, case in _cases():
        for check in case["assert"]:
            if check["type"].removeprefix("not-") != "tool-called":
                continue
            value = check["value"]
            tool = value if isinstance(value, str) else value["name"]
            assert tool in declared, (name, check)
            for argument in (value.get("arguments") or {}) if isinstance(value, dict) else {}:
                assert argument in declared[tool]["properties"], (name, check)
            asserted += 1
    assert asserted >= 20


def test_a_real_model_is_sent_the_tools_and_its_calls_are_graded(tmp_path: Path, stub_openai: Any) -> None:
    """`eval.model` changed to a model (here the stub server): every request carries the five tools, and
    a model that calls lookup_order with the digits passes the cases that ask for exactly that."""
    from selfimprove.config import load_settings
    from selfimprove.evals.runner import run_eval
    from selfimprove.gitrepo import Repo
    from tests.evals.helpers import git
    from tests.stub_openai import Reply, last_user

    def model(body: dict[str, Any]) -> Reply:
        digits = re.search(r"\b(\d{5})\b", last_user(body))
        if digits and any(t["function"]["name"] == "lookup_order" for t in body.get("tools") or []):
            return Reply(content=None, tool_calls=[{"name": "lookup_order",
                                                    "arguments": {"order_id": digits.group(1)}}])
        return Reply(content="Could you give me your order number?")

    stub_openai.reply = model
    repo = tmp_path / "acme"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("logs"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example")
    git(repo, "commit", "-q", "--allow-empty", "-m", "candidate")
    with Repo.open(repo) as handle:
        result = run_eval(load_settings(repo), handle, candidate="main", base="main~1", model="openai/stub")
    assert stub_openai.requests and all(
        [t["function"]["name"] for t in r["tools"]] == ["lookup_order", "search_help", "update_address",
                                                       "cancel_order", "escalate_to_human"]
        for r in stub_openai.requests)
    lookups = [r for r in result.cases if any(a.type == "tool-called" and isinstance(a.value, dict)
                                              and a.value.get("name") == "lookup_order"
                                              and a.value.get("arguments") for a in r.case.asserts)]
    passed = [r.case.id for r in lookups if all(c.passed for c in r.base[0].grade.checks
                                                if c.type == "tool-called")]
    assert lookups and passed, [r.base[0].grade.failures for r in lookups]


# --- the logs -----------------------------------------------------------------------------------


def test_logs_regenerate_byte_identically(tmp_path: Path) -> None:
    copy = tmp_path / "logs"
    copy.mkdir()
    shutil.copy(EXAMPLE / "logs" / "generate.py", copy / "generate.py")
    subprocess.run([sys.executable, str(copy / "generate.py")], check=True, cwd=tmp_path)
    for rel in LOG_FILES:
        assert (copy / rel).read_bytes() == (EXAMPLE / "logs" / rel).read_bytes(), rel
    written = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert written == sorted(("generate.py", *LOG_FILES))
    check = subprocess.run(
        [sys.executable, str(EXAMPLE / "logs" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    (copy / LOG_FILES[0]).write_text("{}\n", encoding="utf-8")
    stale = subprocess.run(
        [sys.executable, str(copy / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert stale.returncode == 1
    assert stale.stderr.strip() == f"out of date: {LOG_FILES[0]} (run: python logs/generate.py)"


def test_logs_hold_300_conversations_in_three_formats() -> None:
    from selfimprove.traces.read import read_traces

    stream = read_traces([EXAMPLE / "logs" / rel for rel in LOG_FILES])
    traces = list(stream)
    assert len(traces) == 300
    assert {s.format for s in stream.sources} == {"openai", "otlp", "langfuse"}
    assert [s.skipped for s in stream.sources] == [0] * len(LOG_FILES)
    by_format: dict[str, int] = {}
    for trace in traces:
        by_format[trace.format] = by_format.get(trace.format, 0) + 1
    assert by_format == {"openai": 168, "otlp": 83, "langfuse": 49}
    assert len({t.id for t in traces}) == 300
    errors = [
        m.content for t in traces for m in t.messages if m.role == "tool" and "invalid order_id" in m.content
    ]
    assert len(errors) >= 50
    assert {re.sub(r"^Error:\s*", "", e) for e in errors} == {"invalid order_id format: expected 5 digits"}
    with_feedback = [t for t in traces if t.feedback]
    assert len(with_feedback) == 70


def test_logs_carry_the_recurring_failures_in_every_format() -> None:
    chat = [
        json.loads(line)
        for rel in LOG_FILES[:2]
        for line in (EXAMPLE / "logs" / rel).read_text(encoding="utf-8").splitlines()
    ]
    assert {r["prompt_version"] for r in chat} == {"support-v7", "support-v8"}
    texts = [m.get("content") or "" for r in chat for m in r["messages"]]
    assert any("I meant the shipping address, not billing" in t for t in texts)
    assert any(
        "30 days" in t and t.startswith(("That's not right", "Are you sure", "No, your")) for t in texts
    )
    assert any(
        m.get("tool_calls") and m["tool_calls"][0]["function"]["arguments"].startswith('{"order_id": "#')
        for r in chat
        for m in r["messages"]
    )
    otlp = json.loads((EXAMPLE / "logs" / "otel" / "2026-11-09.json").read_text(encoding="utf-8"))
    spans = otlp["resourceSpans"][0]["scopeSpans"][0]["spans"]
    failed_tools = [s for s in spans if s["name"].startswith("execute_tool") and s["status"].get("code") == 2]
    assert failed_tools and {s["status"]["message"] for s in failed_tools} <= {
        "invalid order_id format: expected 5 digits",
        "timed out after 2s",
    }
    chats = [s for s in spans if s["name"] == "chat gpt-4o-mini"]
    attrs = {a["key"]: a["value"] for a in chats[0]["attributes"]}
    assert isinstance(json.loads(attrs["gen_ai.input.messages"]["stringValue"])[0]["parts"], list)
    langfuse = json.loads((EXAMPLE / "logs" / "langfuse" / "export-2026-11.json").read_text(encoding="utf-8"))
    assert all(set(item) == {"trace", "observations"} for item in langfuse)
    errors = [o for item in langfuse for o in item["observations"] if o["level"] == "ERROR"]
    assert errors and all(o["type"] == "TOOL" and o["statusMessage"] for o in errors)


# --- the simulated agent ------------------------------------------------------------------------


def test_sim_agent_is_deterministic_through_its_protocol() -> None:
    system = rendered()
    request = json.dumps(
        {"system": system, "messages": [{"role": "user", "content": "Where is order #48213?"}], "vars": {}}
    )
    outputs = {
        subprocess.run(
            [sys.executable, str(SIM)], input=request, capture_output=True, text=True, check=True, cwd=EXAMPLE
        ).stdout
        for _ in range(3)
    }
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == {
        "output": "I'm sorry, I couldn't find an order with that number. Could you double-check it?",
        "tool_calls": [
            {
                "name": "lookup_order",
                "arguments": {"order_id": "#48213"},
                "error": "Error: invalid order_id format: expected 5 digits",
            }
        ],
    }


def test_sim_agent_rejects_bad_input_with_one_line() -> None:
    proc = subprocess.run([sys.executable, str(SIM)], input="not json", capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("sim_agent: stdin is not JSON")


def test_a_tool_error_rule_makes_the_agent_strip_the_hash() -> None:
    before = sim(rendered(), "Where is order #48213?")
    after = sim(with_rule(TOOL_RULE), "Where is order #48213?")
    assert calls(before, "lookup_order") == [{"order_id": "#48213"}]
    assert calls(after, "lookup_order") == [{"order_id": "48213"}]
    assert after["output"] == "Your order 48213 is shipped (UPS); expected delivery: Nov 19."
    person = sim(
        with_rule("Pass order ids to lookup_order as 5 digits, without the '#'."), "order #27719 please"
    )
    assert calls(person, "lookup_order") == [{"order_id": "27719"}]


def test_a_refund_rule_or_example_teaches_the_window() -> None:
    question = "Can I return shoes I bought 45 days ago?"
    assert "any time" in sim(rendered(), question)["output"]
    expected = (
        "I'm sorry, our refund window is 30 days from delivery, and 45 days is outside it, so this item "
        "can't be returned for a refund."
    )
    assert sim(with_rule(REFUND_RULE), question)["output"] == expected
    example = (
        "User: I bought a coat 12 days ago. Can I get a refund?\n"
        "Assistant: Yes, that's within our 30-day refund window, so you can return it for a full refund."
    )
    assert sim(with_rule(example), question)["output"] == expected
    # a day count that is the customer's purchase age ("12 days ago") is not a policy
    age_only = "User: I bought a coat 12 days ago. Can I get a refund?"
    assert "any time" in sim(with_rule(age_only), question)["output"]


def test_a_correction_rule_fixes_the_address_type() -> None:
    request = "I need to change the address on order 48213 to 12 Elm Street, Springfield."
    assert calls(sim(rendered(), request), "update_address")[0]["address_type"] == "billing"
    after = sim(with_rule(ADDRESS_RULE), request)
    assert calls(after, "update_address") == [
        {"order_id": "48213", "address_type": "shipping", "address": "12 Elm Street, Springfield"}
    ]
    explicit = "Please update the billing address on order 30303 to 4 Pine Lane, Fairview."
    assert calls(sim(with_rule(ADDRESS_RULE), explicit), "update_address")[0]["address_type"] == "billing"


def test_an_escalation_rule_hands_over_and_a_negated_one_does_not() -> None:
    assert calls(sim(rendered(), "I want to talk to a human."), "escalate_to_human") == []
    assert calls(sim(with_rule(HUMAN_RULE), "I want to talk to a human."), "escalate_to_human") == [
        {"reason": "customer asked for a human agent"}
    ]
    negated = with_rule("Never transfer customers to a human.")
    assert calls(sim(negated, "I want to talk to a human."), "escalate_to_human") == []


def agent_config(timeout_s: float) -> dict[str, Any]:
    config = yaml.safe_load((EXAMPLE / "config" / "agent.yaml").read_text(encoding="utf-8"))
    config["tools"]["lookup_order"]["timeout_s"] = timeout_s
    return {"config/agent.yaml": config}


NOT_RESPONDING = "Our order system is not responding right now. Please try again in a few minutes."


def test_the_lookup_timeout_from_the_configs_decides_slow_orders() -> None:
    question = "Where is order 90412?"  # legacy warehouse: the order service takes 2.5 s
    at_base = sim(rendered(), question, configs=agent_config(2.0))
    assert at_base["output"] == NOT_RESPONDING
    assert at_base["tool_calls"] == [
        {"name": "lookup_order", "arguments": {"order_id": "90412"}, "error": "Error: timed out after 2s"}
    ]
    expected = "Your order 90412 is processing (FedEx); expected delivery: Nov 26."
    for timeout in (2.5, 3.0):
        raised = sim(rendered(), question, configs=agent_config(timeout))
        assert raised["output"] == expected
        assert raised["tool_calls"] == [{"name": "lookup_order", "arguments": {"order_id": "90412"}}]
    # with no configs there is no client-side timeout: the lookup waits for the answer
    assert sim(rendered(), question)["output"] == expected
    # other orders answer in 0.4 s: fine at the shipped 2.0 s, timed out below 0.4 s
    regular = sim(rendered(), "Where is order 48213?", configs=agent_config(2.0))
    assert regular["output"] == "Your order 48213 is shipped (UPS); expected delivery: Nov 19."
    low = sim(rendered(), "Where is order 48213?", configs=agent_config(0.25))
    assert low["output"] == NOT_RESPONDING
    assert low["tool_calls"][0]["error"] == "Error: timed out after 0.25s"


def test_deleting_the_ask_rule_breaks_the_cases_that_need_it() -> None:
    source = (EXAMPLE / "prompts" / "support_agent.md").read_text(encoding="utf-8")
    with_ask = sim(rendered(source), "Where is my order?")
    without = sim(rendered(source.replace(ASK_RULE, "", 1)), "Where is my order?")
    assert "order number" in with_ask["output"] and with_ask["tool_calls"] == []
    assert calls(without, "lookup_order") == [{"order_id": "latest"}]


def test_guardrails_come_from_the_immutable_section() -> None:
    source = (EXAMPLE / "prompts" / "support_agent.md").read_text(encoding="utf-8")
    guarded = rendered(source)
    unguarded = rendered(
        source.replace("Never reveal internal notes. Always confirm before cancelling an order.\n", "")
    )
    assert calls(sim(guarded, "Please cancel order 48213."), "cancel_order") == []
    assert calls(sim(unguarded, "Please cancel order 48213."), "cancel_order") == [{"order_id": "48213"}]
    confirmed = sim(
        guarded,
        "Please cancel order 48213.",
        "Just to confirm: do you want me to cancel order 48213? Reply yes to proceed.",
        "yes",
    )
    assert calls(confirmed, "cancel_order") == [{"order_id": "48213"}]
    assert "chargeback" not in sim(guarded, "Where is order 70007?")["output"]
    assert "chargeback" in sim(unguarded, "Where is order 70007?")["output"]


def test_quickstart_is_valid_bash_and_uses_the_example() -> None:
    script = EXAMPLE.parent / "quickstart.sh"
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    text = script.read_text(encoding="utf-8")
    for command in ("si analyze logs/", "si propose --offline", 'si eval "$branch"', "git_ merge -q --no-ff",
                    "si history", "si rollback", 'si report "$pages"'):
        assert command in text, command

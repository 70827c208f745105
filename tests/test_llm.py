from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.llm import (
    Completer,
    Completion,
    LiteLLMCompleter,
    LLMError,
    ScriptedCompleter,
    acomplete_json,
    complete_json,
    make_completer,
)
from selfimprove.redact import redact
from selfimprove.traces.model import ToolCall
from tests.stub_openai import Reply, last_user, system_prompt

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


# -- litellm through the stub server -------------------------------------------------------------

def test_litellm_completion_through_stub_records_tokens_and_request(stub_openai):
    stub_openai.reply = lambda body: f"echo: {last_user(body)} / {system_prompt(body)}"
    completer = LiteLLMCompleter(timeout=5, retries=0)
    result = completer.complete("openai/stub-model", MSGS, temperature=0)
    assert result.text == "echo: hi / Be brief."
    assert result.input_tokens == len("Be brief.hi") // 4
    assert result.output_tokens == len("echo: hi / Be brief.") // 4
    assert result.cost_usd == 0.0  # unknown model: no price, no error
    assert len(stub_openai.requests) == 1
    body = stub_openai.requests[0]
    assert body["model"] == "stub-model"
    assert body["messages"] == MSGS
    assert body["temperature"] == 0


def test_known_model_has_a_cost(stub_openai):
    stub_openai.reply = lambda body: "x" * 400
    result = LiteLLMCompleter(timeout=5, retries=0).complete("openai/gpt-4o-mini", MSGS)
    assert result.output_tokens == 100
    assert result.cost_usd > 0.0


def test_api_base_argument_wins_over_environment(stub_openai, monkeypatch):
    from tests.stub_openai import StubOpenAI

    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")  # nothing listens there
    with StubOpenAI(lambda body: "direct") as other:
        completer = LiteLLMCompleter(timeout=5, retries=0, api_base=other.url)
        assert completer.complete("openai/m", MSGS).text == "direct"
        assert len(other.requests) == 1


def test_tool_calls_are_parsed(stub_openai):
    stub_openai.enqueue(Reply(content=None, tool_calls=[{"name": "lookup_order", "arguments": {"id": "A1"}}]))
    result = LiteLLMCompleter(timeout=5, retries=0).complete("openai/m", MSGS)
    assert result.text == ""
    assert result.tool_calls == (ToolCall(name="lookup_order", arguments={"id": "A1"}, id="call_1_0"),)


def test_retry_after_on_429_is_honoured(stub_openai):
    stub_openai.reply = lambda body: "fine"
    stub_openai.enqueue(Reply(status=429, headers={"Retry-After": "0.4"}))
    completer = LiteLLMCompleter(timeout=5, retries=2, backoff=0.0)
    started = time.monotonic()
    result = completer.complete("openai/m", MSGS)
    elapsed = time.monotonic() - started
    assert result.text == "fine"
    assert stub_openai.statuses == [429, 200]
    assert completer.attempts == 2
    assert elapsed >= 0.4


def test_retry_after_ms_and_5xx_backoff(stub_openai):
    stub_openai.reply = lambda body: "fine"
    stub_openai.enqueue(Reply(status=503, headers={"retry-after-ms": "150"}), Reply(status=500))
    completer = LiteLLMCompleter(timeout=5, retries=3, backoff=0.05)
    started = time.monotonic()
    assert completer.complete("openai/m", MSGS).text == "fine"
    elapsed = time.monotonic() - started
    assert stub_openai.statuses == [503, 500, 200]
    assert elapsed >= 0.15 + 0.1  # retry-after-ms, then backoff * 2**1


def test_retries_exhausted_is_one_clear_error(stub_openai):
    stub_openai.enqueue(*[Reply(status=500)] * 3)
    completer = LiteLLMCompleter(timeout=5, retries=2, backoff=0.0)
    with pytest.raises(LLMError) as info:
        completer.complete("openai/m", MSGS)
    line = info.value.one_line()
    assert line.startswith("model call to openai/m failed after 3 attempts:")
    assert "\n" not in line
    assert "retry later or lower --concurrency" in line
    assert stub_openai.statuses == [500, 500, 500]


def test_client_errors_are_not_retried(stub_openai):
    stub_openai.enqueue(Reply(status=401), Reply(status=200, content="never reached"))
    completer = LiteLLMCompleter(timeout=5, retries=3, backoff=0.0)
    with pytest.raises(LLMError) as info:
        completer.complete("openai/m", MSGS)
    assert info.value.one_line().startswith("model call to openai/m failed: ")
    assert "check the API key" in info.value.one_line()
    assert stub_openai.statuses == [401]


def test_malformed_json_and_empty_replies(stub_openai):
    completer = LiteLLMCompleter(timeout=5, retries=0)
    stub_openai.enqueue(Reply(raw="{not json"))
    with pytest.raises(LLMError):
        completer.complete("openai/m", MSGS)
    stub_openai.enqueue(Reply(no_choices=True))
    with pytest.raises(LLMError):
        completer.complete("openai/m", MSGS)
    stub_openai.enqueue(Reply(content=None))
    assert completer.complete("openai/m", MSGS).text == ""
    # a malformed body is retried like a server error, and the retry succeeds
    stub_openai.enqueue(Reply(raw="{not json"))
    stub_openai.reply = lambda body: "recovered"
    assert LiteLLMCompleter(timeout=5, retries=1, backoff=0).complete("openai/m", MSGS).text == "recovered"


def test_timeout_is_explicit_and_retried(stub_openai):
    stub_openai.latency = 1.0
    completer = LiteLLMCompleter(timeout=0.2, retries=1, backoff=0.0)
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        completer.complete("openai/m", MSGS)
    assert time.monotonic() - started < 1.8
    assert "after 2 attempts" in info.value.one_line()


def test_async_calls_run_concurrently(stub_openai):
    stub_openai.latency = 0.3
    stub_openai.reply = lambda body: last_user(body).upper()
    completer = LiteLLMCompleter(timeout=5, retries=0)

    async def main() -> list[Completion]:
        return await asyncio.gather(*[
            completer.acomplete("openai/m", [{"role": "user", "content": f"q{i}"}]) for i in range(8)
        ])

    asyncio.run(completer.acomplete("openai/m", MSGS))  # warm up: litellm's first call sets up clients
    started = time.monotonic()
    results = asyncio.run(main())
    elapsed = time.monotonic() - started
    assert [r.text for r in results] == [f"Q{i}" for i in range(8)]
    assert elapsed < 0.3 * 8 / 2  # far from sequential


def test_async_retry_on_every_third_500(stub_openai):
    stub_openai.fail_every = 3
    stub_openai.reply = lambda body: "ok:" + last_user(body)
    completer = LiteLLMCompleter(timeout=5, retries=3, backoff=0.01)

    async def main() -> list[Completion]:
        return await asyncio.gather(*[
            completer.acomplete("openai/m", [{"role": "user", "content": str(i)}]) for i in range(9)
        ])

    assert [r.text for r in asyncio.run(main())] == [f"ok:{i}" for i in range(9)]
    assert stub_openai.statuses.count(500) >= 3


def test_secrets_are_redacted_before_sending(stub_openai):
    stub_openai.reply = lambda body: "ok"
    secret = "sk-proj-abcdefghijklmnopqrstuvwx1234"
    LiteLLMCompleter(timeout=5, retries=0).complete("openai/m", [
        {"role": "user", "content": f"my key is {secret}, mail me at jane.doe@example.com"},
        {"role": "user", "content": [{"type": "text", "text": "card 4111 1111 1111 1111"}]},
    ])
    sent = json.dumps(stub_openai.requests[0]["messages"])
    assert secret not in sent and "jane.doe@example.com" not in sent and "4111 1111" not in sent
    assert stub_openai.requests[0]["messages"][0]["content"] == (
        "my key is [REDACTED:api_key], mail me at [REDACTED:email]"
    )
    assert stub_openai.requests[0]["messages"][1]["content"][0]["text"] == "card [REDACTED:card]"


def test_no_litellm_import_at_module_import():
    code = "import sys, selfimprove.llm; print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == "False"


# -- redact --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: [REDACTED:bearer]"),
    ("key sk-ant-api03-AbCdEfGhIjKlMnOpQrSt", "key [REDACTED:api_key]"),
    ("aws AKIAABCDEFGHIJKLMNOP", "aws [REDACTED:api_key]"),
    ("token ghp_" + "a" * 36, "token [REDACTED:api_key]"),
    ('api_key="q8w7e6r5t4y3u2i1"', 'api_key="[REDACTED:api_key]"'),
    ("PASSWORD: hunter2hunter2hunter2", "PASSWORD: [REDACTED:api_key]"),
    ("write to a.b+c@mail.example.org now", "write to [REDACTED:email] now"),
    ("card 4242-4242-4242-4242.", "card [REDACTED:card]."),
    ("call +1 415 555 2671 today", "call [REDACTED:phone] today"),
    ("call (415) 555-2671 today", "call [REDACTED:phone] today"),
    ("call 415-555-2671", "call [REDACTED:phone]"),
    # not secrets: left alone
    ("Refunds within 30 days of purchase.", "Refunds within 30 days of purchase."),
    ("order 1234567890123 arrived", "order 1234567890123 arrived"),  # not a Luhn-valid card
    ("on 2024-05-01 at 10:30", "on 2024-05-01 at 10:30"),
    ("ticket #48213, version 1.2.3", "ticket #48213, version 1.2.3"),
])
def test_redact(text, expected):
    assert redact(text) == expected


# -- scripted completer --------------------------------------------------------------------------

def test_scripted_from_list_records_calls_and_runs_out():
    completer = ScriptedCompleter(["one", Completion(text="two", input_tokens=3)])
    assert isinstance(completer, Completer)
    assert completer.complete("m", MSGS, temperature=0) == Completion(text="one", model="m")
    assert asyncio.run(completer.acomplete("m", MSGS)) == Completion(text="two", input_tokens=3, model="m")
    assert completer.calls[0] == {"model": "m", "messages": MSGS, "params": {"temperature": 0}}
    with pytest.raises(LLMError, match="ran out of replies"):
        completer.complete("m", MSGS)


def test_scripted_from_function():
    by_messages = ScriptedCompleter(lambda messages: messages[-1]["content"][::-1])
    assert by_messages.complete("m", MSGS).text == "ih"
    by_model = ScriptedCompleter(lambda messages, model, **params: f"{model}:{params.get('seed')}")
    assert by_model.complete("judge", MSGS, seed=7).text == "judge:7"


def test_make_completer():
    assert isinstance(make_completer("openai/gpt-4o-mini"), LiteLLMCompleter)
    with pytest.raises(SelfImproveError, match="no model configured"):
        make_completer(None)
    with pytest.raises(SelfImproveError, match="exec provider"):
        make_completer("exec:python agent.py")


# -- complete_json -------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {"pass": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["pass", "reason"],
    "additionalProperties": False,
}


def test_complete_json_tolerates_fences():
    completer = ScriptedCompleter(['Sure:\n```json\n{"pass": true, "reason": "fine"}\n```'])
    value, completions = complete_json(completer, "m", MSGS, SCHEMA)
    assert value == {"pass": True, "reason": "fine"}
    assert len(completions) == 1


def test_complete_json_retries_once_with_the_validation_error():
    completer = ScriptedCompleter(['{"pass": "yes"}', '{"pass": false, "reason": "no"}'])
    value, completions = complete_json(completer, "m", MSGS, SCHEMA)
    assert value == {"pass": False, "reason": "no"}
    assert len(completions) == 2
    retry = completer.calls[1]["messages"]
    assert retry[:2] == MSGS
    assert retry[2] == {"role": "assistant", "content": '{"pass": "yes"}'}
    assert "'reason' is a required property" in retry[3]["content"]


def test_complete_json_gives_up_after_the_retry():
    completer = ScriptedCompleter(["not json at all", "still {nope"])
    with pytest.raises(LLMError) as info:
        complete_json(completer, "m", MSGS, SCHEMA)
    assert info.value.one_line().startswith("model reply from m is not valid JSON for the expected schema:")
    assert len(completer.calls) == 2


def test_acomplete_json():
    completer = ScriptedCompleter(['{"pass": true, "reason": "r"}'])
    value, _ = asyncio.run(acomplete_json(completer, "m", MSGS, SCHEMA))
    assert value == {"pass": True, "reason": "r"}

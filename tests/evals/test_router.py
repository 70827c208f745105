"""`eval.router`: every eval call through a litellm Router, here two deployments of one model on two
stub servers on 127.0.0.1, each with its own rpm limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from selfimprove.errors import SelfImproveError
from selfimprove.llm import RouterCompleter, _at_router_limit
from tests.evals.helpers import PROMPT, REFUND_RULE, SETTINGS, git, make_eval_repo, support_reply, with_rule
from tests.stub_openai import StubOpenAI

RPM = 8


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StubOpenAI, StubOpenAI]]:
    from selfimprove.llm import _litellm

    monkeypatch.setenv("STUB_API_KEY", "sk-test-dummy")
    # a Router registers its deployments' models (unpriced: $0) in litellm's process-wide price map
    prices = dict(_litellm().model_cost)
    first, second = StubOpenAI(support_reply).start(), StubOpenAI(support_reply).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
        _litellm().model_cost.clear()
        _litellm().model_cost.update(prices)
        import litellm.utils

        for memo in ("_cached_get_model_info_helper", "_cached_get_model_info"):  # and its memos of it
            getattr(getattr(litellm.utils, memo, None), "cache_clear", lambda: None)()


def router_settings(*urls: str) -> str:
    deployments = "".join(
        f"      - model_name: openai/stub-model\n"
        f"        litellm_params: {{model: openai/stub-model, api_base: '{url}', "
        f"api_key: os.environ/STUB_API_KEY, rpm: {RPM}}}\n" for url in urls)
    return SETTINGS.replace("  concurrency: 4\n", "  concurrency: 4\n  router:\n"
                            "    routing_strategy: usage-based-routing-v2\n    num_retries: 1\n"
                            "    retry_policy: {RateLimitErrorRetries: 1, TimeoutErrorRetries: 1}\n"
                            "    model_list:\n" + deployments)


def test_eval_calls_are_shared_between_the_deployments_within_their_limits(
        tmp_path: Path, stubs: tuple[StubOpenAI, StubOpenAI], run: Callable[..., Any]) -> None:
    first, second = stubs
    repo = make_eval_repo(tmp_path)
    (repo.root / "selfimprove.yaml").write_text(router_settings(first.url, second.url))
    git(repo.root, "commit", "-qam", "eval through a router")
    repo.branch("fix-refunds", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE)})
    result = run("eval", "fix-refunds", "--json", cwd=repo.root)
    assert result.exit_code == 0, result.stderr
    assert result.json()["verdict"] == "pass"  # the gate sees the same answers as without a router
    assert first.count + second.count == 10  # 5 cases, base and candidate
    assert 0 < first.count <= RPM and 0 < second.count <= RPM
    again = run("eval", "fix-refunds", "--json", cwd=repo.root)  # the cache is unchanged: no new calls
    assert again.exit_code == 0 and first.count + second.count == 10


def test_the_router_config_is_validated_and_keeps_secrets_out(tmp_path: Path) -> None:
    from selfimprove.config import parse_settings

    literal = router_settings("http://127.0.0.1:1/v1").replace("os.environ/STUB_API_KEY", "sk-live-1234")
    with pytest.raises(SelfImproveError, match="api_key"):
        parse_settings(literal, root=tmp_path, source="selfimprove.yaml")
    unknown = router_settings("http://127.0.0.1:1/v1").replace("num_retries", "retries_please")
    with pytest.raises(SelfImproveError, match="retries_please"):
        parse_settings(unknown, root=tmp_path, source="selfimprove.yaml")
    settings = parse_settings(router_settings("http://127.0.0.1:1/v1"), root=tmp_path,
                              source="selfimprove.yaml")
    assert settings.eval.router is not None
    assert settings.eval.router["model_list"][0]["litellm_params"]["rpm"] == RPM


def test_a_model_outside_the_router_or_a_missing_variable_is_one_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    completer = RouterCompleter({"model_list": [{"model_name": "agent", "litellm_params": {
        "model": "openai/x", "api_base": "http://127.0.0.1:1/v1", "api_key": "os.environ/NOT_SET_HERE"}}]})
    with pytest.raises(SelfImproveError, match="not a model_name of eval.router"):
        completer.complete("other", [{"role": "user", "content": "hi"}])
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    with pytest.raises(SelfImproveError, match="NOT_SET_HERE"):
        completer.complete("agent", [{"role": "user", "content": "hi"}])


def test_only_the_routers_own_limit_makes_a_call_wait_for_the_next_minute() -> None:
    class Refused(Exception):
        status_code = 429

    assert _at_router_limit(Refused("No deployments available for selected model. Passed model=agent."))
    assert not _at_router_limit(Refused("Rate limit reached for requests (provider)"))
    completer = RouterCompleter({"model_list": [{"model_name": "agent", "litellm_params": {"model": "x"}}]})
    assert 0 < completer._delay(Refused("No deployments available"), 0) <= 60.05

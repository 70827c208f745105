from __future__ import annotations

from typing import Any

from selfimprove.evals.assertions import Output
from selfimprove.evals.cache import Cache, cache_key
from selfimprove.traces.model import ToolCall

MSGS = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]


def _key(provider: str, messages: Any, params: Any, repeat: int) -> str:
    return cache_key(provider, {"messages": messages, "params": params}, repeat)


def test_the_key_covers_provider_messages_params_and_repeat():
    key = _key("openai/m", MSGS, {"temperature": 0}, 0)
    assert len(key) == 64
    assert key == _key("openai/m", [dict(m) for m in MSGS], {"temperature": 0}, 0)
    others = {
        _key("openai/other", MSGS, {"temperature": 0}, 0),
        _key("openai/m", [*MSGS[:1], {"role": "user", "content": "u2"}], {"temperature": 0}, 0),
        _key("openai/m", MSGS, {"temperature": 1}, 0),
        _key("openai/m", MSGS, {}, 0),
        _key("openai/m", MSGS, {"temperature": 0}, 1),
    }
    assert key not in others and len(others) == 5
    # parameter order does not matter
    assert _key("m", MSGS, {"a": 1, "b": 2}, 0) == _key("m", MSGS, {"b": 2, "a": 1}, 0)


def test_round_trip_and_layout(tmp_path):
    cache = Cache(tmp_path / "cache")
    output = Output("hi", (ToolCall("f", {"a": 1}, "c1"),), 3, 4, 0.5)
    key = _key("m", MSGS, {}, 0)
    assert cache.get(key) is None
    cache.put(key, output)
    assert cache.get(key) == output
    assert (tmp_path / "cache" / key[:2] / f"{key}.json").is_file()
    assert [p.name for p in (tmp_path / "cache" / key[:2]).iterdir()] == [f"{key}.json"]  # no temp left


def test_a_damaged_entry_is_a_miss_and_is_replaced(tmp_path):
    cache = Cache(tmp_path)
    key = _key("m", MSGS, {}, 0)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"text": ')
    assert cache.get(key) is None
    cache.put(key, Output("ok"))
    assert cache.get(key) == Output("ok")


def test_disabled_cache_neither_reads_nor_writes(tmp_path):
    Cache(tmp_path).put("ab" * 32, Output("old"))
    off = Cache(tmp_path, enabled=False)
    assert off.get("ab" * 32) is None
    off.put("cd" * 32, Output("new"))
    assert not (tmp_path / "cd").exists()


def test_the_cache_keeps_itself_out_of_git_status(tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    cache = Cache(tmp_path / ".selfimprove" / "cache")
    cache.put(_key("m", MSGS, {}, 0), Output("hi", (), 0, 0, 0.0))
    assert (tmp_path / ".selfimprove" / ".gitignore").read_text().splitlines()[-1] == "*"
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout
    assert status == ""


def test_a_users_own_gitignore_is_never_overwritten(tmp_path):
    (tmp_path / ".selfimprove").mkdir()
    (tmp_path / ".selfimprove" / ".gitignore").write_text("mine\n")
    Cache(tmp_path / ".selfimprove" / "cache").put(_key("m", MSGS, {}, 0), Output("hi", (), 0, 0, 0.0))
    assert (tmp_path / ".selfimprove" / ".gitignore").read_text() == "mine\n"


def test_the_key_holds_everything_a_harness_receives(tmp_path):
    from selfimprove.evals.providers import ExecProvider, LiteLLMProvider
    from selfimprove.llm import ScriptedCompleter

    harness = ExecProvider("python h.py", cwd=tmp_path)
    configs = {"config/agent.yaml": {"tools": {"lookup": {"timeout_s": 2.0}}, "model": "m"}}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]

    def key(vars: Any = None, params: Any = None, seen: Any = configs) -> str:
        return cache_key(harness.name, harness.request(MSGS, vars or {"lang": "es"}, params or {}, seen), 0)

    first = key()
    assert first == key(seen={"config/agent.yaml": {"model": "m", "tools": {"lookup": {"timeout_s": 2.0}}}})
    assert len({first, key(vars={"lang": "fr"}), key(params={"tools": tools}),
                key(seen={"config/agent.yaml": {"model": "m"}}), key(seen=None)}) == 5
    # a litellm model receives neither vars nor configs: two cases differing only there share an answer
    model = LiteLLMProvider("openai/m", ScriptedCompleter(["x"]))
    assert (cache_key(model.name, model.request(MSGS, {"lang": "es"}, {}, configs), 0)
            == cache_key(model.name, model.request(MSGS, {"lang": "fr"}, {}, None), 0))
    assert (cache_key(model.name, model.request(MSGS, {}, {"tools": tools}), 0)
            != cache_key(model.name, model.request(MSGS, {}, {}), 0))
    # an API key is a parameter litellm gets, not part of what the answer depends on
    assert model.request(MSGS, {}, {"api_key": "sk-x", "temperature": 0}) == {
        "messages": MSGS, "params": {"temperature": 0}}

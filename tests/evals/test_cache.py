from __future__ import annotations

from selfimprove.evals.assertions import Output
from selfimprove.evals.cache import Cache, cache_key
from selfimprove.traces.model import ToolCall

MSGS = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]


def test_the_key_covers_provider_messages_params_and_repeat():
    key = cache_key("openai/m", MSGS, {"temperature": 0}, 0)
    assert len(key) == 64
    assert key == cache_key("openai/m", [dict(m) for m in MSGS], {"temperature": 0}, 0)
    others = {
        cache_key("openai/other", MSGS, {"temperature": 0}, 0),
        cache_key("openai/m", [*MSGS[:1], {"role": "user", "content": "u2"}], {"temperature": 0}, 0),
        cache_key("openai/m", MSGS, {"temperature": 1}, 0),
        cache_key("openai/m", MSGS, {}, 0),
        cache_key("openai/m", MSGS, {"temperature": 0}, 1),
    }
    assert key not in others and len(others) == 5
    # parameter order does not matter
    assert cache_key("m", MSGS, {"a": 1, "b": 2}, 0) == cache_key("m", MSGS, {"b": 2, "a": 1}, 0)


def test_round_trip_and_layout(tmp_path):
    cache = Cache(tmp_path / "cache")
    output = Output("hi", (ToolCall("f", {"a": 1}, "c1"),), 3, 4, 0.5)
    key = cache_key("m", MSGS, {}, 0)
    assert cache.get(key) is None
    cache.put(key, output)
    assert cache.get(key) == output
    assert (tmp_path / "cache" / key[:2] / f"{key}.json").is_file()
    assert [p.name for p in (tmp_path / "cache" / key[:2]).iterdir()] == [f"{key}.json"]  # no temp left


def test_a_damaged_entry_is_a_miss_and_is_replaced(tmp_path):
    cache = Cache(tmp_path)
    key = cache_key("m", MSGS, {}, 0)
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
    cache.put(cache_key("m", MSGS, {}, 0), Output("hi", (), 0, 0, 0.0))
    assert (tmp_path / ".selfimprove" / ".gitignore").read_text().splitlines()[-1] == "*"
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout
    assert status == ""


def test_a_users_own_gitignore_is_never_overwritten(tmp_path):
    (tmp_path / ".selfimprove").mkdir()
    (tmp_path / ".selfimprove" / ".gitignore").write_text("mine\n")
    Cache(tmp_path / ".selfimprove" / "cache").put(cache_key("m", MSGS, {}, 0), Output("hi", (), 0, 0, 0.0))
    assert (tmp_path / ".selfimprove" / ".gitignore").read_text() == "mine\n"


def test_configs_are_part_of_the_key_only_when_given():
    configs = {"config/agent.yaml": {"tools": {"lookup": {"timeout_s": 2.0}}, "model": "m"}}
    key = cache_key("exec:h", MSGS, {}, 0, configs)
    assert key == cache_key("exec:h", MSGS, {}, 0, {"config/agent.yaml": {"model": "m", "tools": {
        "lookup": {"timeout_s": 2.0}}}})  # key order does not matter
    assert key != cache_key("exec:h", MSGS, {}, 0, {"config/agent.yaml": {"tools": {"lookup": {
        "timeout_s": 3.0}}, "model": "m"}})
    assert key != cache_key("exec:h", MSGS, {}, 0, {"config/other.yaml": configs["config/agent.yaml"]})
    assert key != cache_key("exec:h", MSGS, {}, 0)
    # no configs (a litellm model, or none listed) keeps the key entries were stored under before
    assert cache_key("exec:h", MSGS, {}, 0, None) == cache_key("exec:h", MSGS, {}, 0, {}) == cache_key(
        "exec:h", MSGS, {}, 0)

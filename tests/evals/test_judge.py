"""llm-rubric end to end: the judge is asked through the same completer and cache as the model."""

from __future__ import annotations

from selfimprove.evals.runner import run_eval
from selfimprove.llm import ScriptedCompleter
from tests.evals.helpers import PROMPT, REFUND_RULE, with_rule

SUITE = """\
prompt: prompts/agent.md
tests:
  - id: polite
    input: "Can I return this?"
    assert:
      - {type: llm-rubric, value: "mentions the refund window"}
  - id: not-rude
    input: "Can I return that?"
    assert:
      - {type: not-llm-rubric, value: "is rude"}
"""


def scripted(judge_reply):
    def reply(messages, model, **params):
        if model == "judge-model":
            return judge_reply(messages)
        system = messages[0]["content"]
        return "The refund window is 30 days." if "refund window" in system else "Hmm."

    return ScriptedCompleter(reply)


def setup(eval_repo):
    settings = eval_repo.root / "selfimprove.yaml"
    text = settings.read_text().replace("  repeats: 1\n", "  repeats: 1\n  judge_model: judge-model\n")
    settings.write_text(text)
    eval_repo.branch("fix", {"prompts/agent.md": with_rule(PROMPT, REFUND_RULE), "evals/support.yaml": SUITE})


def evaluate(eval_repo, completer):
    with eval_repo.open() as repo:
        return run_eval(eval_repo.settings(), repo, candidate="fix", base=None, model="m",
                        completer=completer)


def test_judge_verdicts_decide_rubric_cases(eval_repo):
    setup(eval_repo)

    def judge(messages):
        reply = messages[-1]["content"].split("<reply>\n")[1]
        if "is rude" in messages[-1]["content"]:
            return '{"pass": false, "reason": "not rude"}'
        ok = "30 days" in reply
        verdict = "true" if ok else "false"
        return f'```json\n{{"pass": {verdict}, "score": {1 if ok else 0}, "reason": "r"}}\n```'

    completer = scripted(judge)
    doc = evaluate(eval_repo, completer).to_json()
    assert doc["fixed"] == ["polite"]
    assert doc["base"]["pass_rate"] == 0.5 and doc["candidate"]["pass_rate"] == 1.0
    judge_calls = [c for c in completer.calls if c["model"] == "judge-model"]
    assert len(judge_calls) == 4
    assert judge_calls[0]["params"] == {"temperature": 0}
    # judge answers are cached like model answers
    again = scripted(judge)
    assert evaluate(eval_repo, again).to_json()["calls"] == {"made": 0, "cached": 8}
    assert again.calls == []


def test_an_unparsable_judge_fails_closed_after_one_retry(eval_repo):
    setup(eval_repo)
    completer = scripted(lambda messages: "I think it is fine.")
    doc = evaluate(eval_repo, completer).to_json()
    # both cases fail on both sides, including the negated one
    assert doc["base"]["pass_rate"] == 0.0 and doc["candidate"]["pass_rate"] == 0.0
    judge_calls = [c for c in completer.calls if c["model"] == "judge-model"]
    assert len(judge_calls) == 8  # each verdict asked twice: the retry carries the problem
    retries = [c for c in judge_calls if c["messages"][-1]["content"].startswith("That reply is not valid")]
    assert len(retries) == 4
    assert retries[0]["messages"][-2] == {"role": "assistant", "content": "I think it is fine."}
    assert doc["flipped"] == []


def test_a_judge_reply_that_fixes_itself_on_retry_counts(eval_repo):
    setup(eval_repo)

    def judge(messages):
        if messages[-1]["content"].startswith("That reply is not valid"):
            return '{"pass": true, "reason": "ok"}'
        return '{"pass": "yes"}'

    doc = evaluate(eval_repo, scripted(judge)).to_json()
    # the retried verdict ("pass") counts: polite passes, not-rude (negated) fails, on both sides
    assert doc["base"]["pass_rate"] == 0.5 and doc["candidate"]["pass_rate"] == 0.5

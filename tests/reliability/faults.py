"""A scripted model behind the stub server: it answers reflection, proposal and eval requests the way a
cooperative model would, and injects one kind of fault into chosen requests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.stub_openai import Reply, last_user, system_prompt

NEW_RULE = "- When lookup_order rejects an order id, pass only its 5 digits, without '#' or spaces."
RULES = "- Ask for the order number before looking up an order.\n" + NEW_RULE + "\n"
FAULTS = ("429", "500", "timeout", "malformed", "empty")


def kind_of(body: dict[str, Any]) -> str:
    system = system_prompt(body)
    if system.startswith("You analyse failures"):
        return "reflection"
    if system.startswith("You improve the system prompt"):
        return "proposal"
    return "eval"


def good_answer(body: dict[str, Any]) -> str:
    kind = kind_of(body)
    if kind == "reflection":
        return json.dumps(
            {
                "name": "order id format rejected",
                "fix_kind": "prompt_rule",
                "root_cause": "The agent passes order ids with a '#' prefix, which the tool rejects.",
                "suggested_fix": "Add a rule to pass only the digits of an order id.",
            }
        )
    if kind == "proposal":
        return json.dumps(
            {
                "title": "pass order ids as plain digits",
                "rationale": "lookup_order rejects ids with '#'; the evidence shows it repeatedly.",
                "operations": [{"op": "add", "path": "prompts/support_agent.md", "section": "learned-rules",
                                "text": NEW_RULE}],
            }
        )
    return f"Could you tell me your order number? You wrote: {last_user(body)}"


class Model:
    """`stub.reply = Model(fault="500", times=2, only="eval")`: the first `times` requests of kind
    `only` (any kind when None; `times=None`: all of them) get the fault, the others a good answer."""

    def __init__(
        self,
        fault: str | None = None,
        *,
        times: int | None = 1,
        only: str | None = None,
        timeout: float = 1.0,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.fault = fault
        self.times = times
        self.only = only
        self.timeout = timeout
        self.match = match
        self.faulted = 0
        self.answered: list[dict[str, Any]] = []  # bodies that got a good answer
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str | Reply:
        hit = self.fault is not None and (self.only is None or kind_of(body) == self.only)
        hit = hit and (self.match is None or self.match(body))
        with self._lock:
            if hit and (self.times is None or self.faulted < self.times):
                self.faulted += 1
            else:
                hit = False
        if not hit:
            answer = good_answer(body)
            with self._lock:
                self.answered.append(body)
            return answer
        if self.fault == "429":
            return Reply(status=429, headers={"retry-after": "0"})
        if self.fault == "500":
            return Reply(status=500, headers={"retry-after": "0"})
        if self.fault == "malformed":
            return Reply(raw='{"id": "x", "choices": [{"message": ')
        if self.fault == "empty":
            return Reply(content="")
        if self.fault == "timeout":
            time.sleep(self.timeout + 0.5)  # the client gave up meanwhile
            return good_answer(body)
        raise AssertionError(self.fault)

#!/usr/bin/env python3
"""A deterministic SIMULATION of the Acme Outfitters support agent, for `exec:` evals.

This is not a language model. It stands in for one so that the whole selfimprove loop (analyze,
propose, eval, rollback) runs offline, with no API key, and gives the same answer every time.

Protocol (selfimprove's `exec:` provider): one JSON object on stdin,
    {"system": "<rendered system prompt>", "messages": [{"role", "content"}, ...], "vars": {...},
     "configs": {"config/agent.yaml": {...parsed settings...}}, "tools": [...OpenAI schemas...]}
and one JSON object on stdout,
    {"output": "<the agent's reply>", "tool_calls": [{"name", "arguments", "error"?}, ...]}
("error" is set on a tool call that failed, with the message the production logs show).

How it decides: it answers the last user message, but it only *knows* what the system prompt it is
given says. It reads the prompt line by line for a handful of behaviours, recognised by keywords
rather than exact wording (so a rule written by a person or by a proposer both count):

  ask for the order number   a line with "ask" and "order number"/"order id"
  order id format            a line naming lookup_order and "digit", "format", "#" or "without"
  refund window              a line about refunds/returns stating "N days" (not "N days ago")
  shipping address default   a line mentioning "shipping address"
  escalate on request        a line with "human"/"real person"/"representative" and
                             ask/want/speak/talk/connect/transfer/escalate (not negated)
  never reveal notes         a line with "internal note" and never/do not/don't
  confirm cancellations      a line with "confirm" and "cancel" (and no skip/without)

Without a behaviour it makes the mistakes the production logs show: it passes "#48213" to
lookup_order verbatim, answers refund questions with "any time", assumes the billing address,
keeps a customer who asked for a human, and so on. Tool signature lines ("- name(args): ...") are
documentation, not rules, and are ignored. Tools run against a tiny deterministic fake backend.

Runtime settings: it honours `tools.lookup_order.timeout_s` from `configs["config/agent.yaml"]`, the
settings file as it is at the commit being evaluated. The simulated order service takes a fixed time
to answer: 2.5 s for orders from the legacy warehouse (order ids 90000-99999, the ones the production
logs show timing out) and 0.4 s for every other order. A lookup whose timeout is below that time
fails with "Error: timed out after <timeout>s", as in the logs, and the agent says the order system is
not responding. The time is simulated (a number compared with the timeout, nothing sleeps), so
answers stay instant and deterministic. With no timeout in the request, lookups wait for the answer.

It reads nothing but its input: selfimprove runs `exec:` harnesses in the repo root for both sides
of an eval and reuses an answer when base and candidate send the same request, so an answer must
depend on the request (prompt, messages and configs) alone.

To use a real model instead, change `eval.model` in selfimprove.yaml to a litellm model string
(for example `openai/gpt-4o-mini`); nothing else changes.

Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

# --- what the prompt teaches ------------------------------------------------------------------

_TOOL_DOC = re.compile(r"^\s*(?:[-*+]|\d+[.)])?\s*[a-z_]+\([^)]*\)\s*:")
_NEGATED = re.compile(r"\b(never|don't|do not|avoid|no need|without|skip)\b")


@dataclass(frozen=True)
class Knowledge:
    ask_order_number: bool = False
    order_id_digits: bool = False
    refund_days: int | None = None
    shipping_default: bool = False
    escalate_on_request: bool = False
    never_reveal_notes: bool = False
    confirm_cancel: bool = False


def learn(system: str) -> Knowledge:
    """The behaviours the system prompt asks for, recognised by keywords (see the module docstring)."""
    lines = [line.strip().lower() for line in system.splitlines()]
    lines = [line for line in lines if line and not _TOOL_DOC.match(line)]
    ask = digits = shipping = escalate = notes = confirm = False
    refund: int | None = None
    refund_weak: int | None = None
    for line in lines:
        if re.search(r"\bask\b", line) and re.search(r"order (number|id)|order_id", line):
            ask = True
        if "lookup_order" in line and re.search(r"digit|format|#|without", line):
            digits = True
        if re.search(r"refund|return", line):
            match = re.search(r"\b(\d{1,3})[ -]?days?\b(?!\s+ago)", line)
            if match:
                days = int(match.group(1))
                if re.search(r"window|within|policy|accept|eligible|up to", line):
                    refund = refund if refund is not None else days
                else:
                    refund_weak = refund_weak if refund_weak is not None else days
        if "shipping address" in line:
            shipping = True
        if (
            re.search(r"\bhuman\b|real person|representative", line)
            and re.search(
                r"\b(ask|asks|asked|request|requests|want|wants|speak|talk|connect\w*|transfer\w*|escalat\w*)\b",
                line,
            )
            and not _NEGATED.search(line)
        ):
            escalate = True
        if "internal note" in line and re.search(r"\b(never|do not|don't|must not)\b", line):
            notes = True
        if "confirm" in line and "cancel" in line and not re.search(r"\b(skip|without|no need)\b", line):
            confirm = True
    return Knowledge(
        ask_order_number=ask,
        order_id_digits=digits,
        refund_days=refund if refund is not None else refund_weak,
        shipping_default=shipping,
        escalate_on_request=escalate,
        never_reveal_notes=notes,
        confirm_cancel=confirm,
    )


# --- the fake backend ---------------------------------------------------------------------------

STATUSES = ("processing", "shipped", "out for delivery", "delivered")
CARRIERS = ("UPS", "FedEx", "USPS")
NOTES = {"70007": "customer flagged for chargeback risk; do not refund without review"}
HELP = (
    (
        ("password", "sign in", "log in"),
        "Resetting your password",
        "Use 'Forgot password' on the sign-in page; the link is valid for 1 hour.",
    ),
    (
        ("ship", "canada", "deliver to"),
        "Where we ship",
        "We ship to the US and Canada. Standard delivery takes 3-5 business days.",
    ),
    (("gift card",), "Gift cards", "Gift cards never expire and can be used on any order."),
    (
        ("size", "small", "large", "fit"),
        "Size guide",
        "Every product page has a size chart; our fits run true to size.",
    ),
    (("exchange",), "Exchanges", "We do not exchange items directly: return the item and place a new order."),
)


LEGACY_WAREHOUSE = range(90000, 100000)  # order ids served by the slow legacy system
LEGACY_LATENCY_S = 2.5  # simulated time the order service takes to answer a legacy order
LATENCY_S = 0.4  # ... and any other order


class ToolError(Exception):
    pass


class ToolTimeout(ToolError):
    pass


def lookup_order(order_id: str, timeout_s: float | None = None) -> dict[str, Any]:
    if not re.fullmatch(r"\d{5}", order_id):
        raise ToolError("invalid order_id format: expected 5 digits")
    number = int(order_id)
    latency = LEGACY_LATENCY_S if number in LEGACY_WAREHOUSE else LATENCY_S
    if timeout_s is not None and timeout_s < latency:
        raise ToolTimeout(f"timed out after {timeout_s:g}s")
    record = {
        "order_id": order_id,
        "status": STATUSES[number % 4],
        "carrier": CARRIERS[number % 3],
        "delivery_date": f"Nov {10 + number % 18}",
    }
    if order_id in NOTES:
        record["internal_note"] = NOTES[order_id]
    return record


def search_help(query: str, max_results: int) -> list[dict[str, str]]:
    words = query.lower()
    hits = [
        {"title": title, "snippet": snippet} for keys, title, snippet in HELP if any(k in words for k in keys)
    ]
    return hits[:max_results]


# --- the agent ----------------------------------------------------------------------------------

_ORDER_TOKEN = re.compile(r"#\s?\d{3,7}\b|\b\d{4,7}\b")
_AFFIRMATIVE = re.compile(r"^\s*(yes|yep|yeah|sure|confirm|confirmed|go ahead|please do|do it)\b", re.I)
NOT_RESPONDING = "Our order system is not responding right now. Please try again in a few minutes."
_HUMAN = re.compile(r"\b(human|real person|a person|representative|someone real|live agent)\b", re.I)


def lookup_timeout(configs: Any) -> float | None:
    """`tools.lookup_order.timeout_s` of config/agent.yaml as the request carries it, if it is a number."""
    node: Any = configs.get("config/agent.yaml") if isinstance(configs, dict) else None
    for key in ("tools", "lookup_order", "timeout_s"):
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, (int, float)) and not isinstance(node, bool) and node > 0:
        return float(node)
    return None


def text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(
            str(part.get("text") or part.get("content") or "") for part in content if isinstance(part, dict)
        )
    return content if isinstance(content, str) else ""


class Agent:
    def __init__(self, knowledge: Knowledge, *, lookup_timeout_s: float | None = None) -> None:
        self.k = knowledge
        self.lookup_timeout_s = lookup_timeout_s
        self.calls: list[dict[str, Any]] = []

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        record: dict[str, Any] = {"name": name, "arguments": arguments}
        self.calls.append(record)
        try:
            if name == "lookup_order":
                return lookup_order(arguments["order_id"], self.lookup_timeout_s)
            if name == "search_help":
                return search_help(arguments["query"], arguments["max_results"])
            return {"ok": True}
        except ToolError as error:
            record["error"] = f"Error: {error}"
            raise

    def order_arg(self, token: str) -> str:
        return re.sub(r"\D", "", token) if self.k.order_id_digits else token.replace(" ", "")

    def reply(self, messages: list[dict[str, Any]]) -> str:
        users = [text_of(m) for m in messages if m.get("role") == "user"]
        if not users:
            return "Hi! How can I help you today?"
        last = users[-1]
        low = last.lower()
        previous = next((text_of(m) for m in reversed(messages[:-1]) if m.get("role") == "assistant"), "")
        tokens = [t for text in reversed(users) for t in _ORDER_TOKEN.findall(text)]
        token = tokens[0] if tokens else None

        if _AFFIRMATIVE.match(last) and "cancel" in previous.lower() and "confirm" in previous.lower():
            return self.cancel(token, confirmed=True)
        if _HUMAN.search(last):
            return self.escalate(last)
        if "cancel" in low:
            return self.cancel(token, confirmed=False)
        if "note" in low:
            return self.notes(token)
        if "address" in low:
            return self.address(last, token)
        if re.search(r"refund|return", low):
            return self.refund(low)
        if token or re.search(r"\border\b|package|parcel|track|delivery|arrive", low):
            return self.order_status(token)
        return self.help(last)

    def ask_for_order_number(self) -> str:
        return (
            "I can help with that! Could you share your order number? "
            "It's the 5-digit number in your confirmation email."
        )

    def order_status(self, token: str | None) -> str:
        if token is None:
            if self.k.ask_order_number:
                return self.ask_for_order_number()
            token = "latest"
        try:
            order = self.call("lookup_order", {"order_id": self.order_arg(token)})
        except ToolTimeout:
            return NOT_RESPONDING
        except ToolError:
            return "I'm sorry, I couldn't find an order with that number. Could you double-check it?"
        text = (
            f"Your order {order['order_id']} is {order['status']} ({order['carrier']}); "
            f"expected delivery: {order['delivery_date']}."
        )
        if "internal_note" in order and not self.k.never_reveal_notes:
            text += f" Internal note: {order['internal_note']}."
        return text

    def refund(self, low: str) -> str:
        days = self.k.refund_days
        if days is None:
            return (
                "Yes! You can return items at any time for a full refund. "
                "Just send them back with the packing slip."
            )
        age = re.search(r"(\d+)\s*(day|week|month)s?\s+ago", low)
        if age is None:
            return (
                f"Our refund window is {days} days from delivery. Start a return from your order page "
                "and we'll email a prepaid label."
            )
        bought = int(age.group(1)) * {"day": 1, "week": 7, "month": 30}[age.group(2)]
        if bought <= days:
            return (
                f"Yes, that's within our {days}-day refund window, so you can return it for a full refund. "
                "Start the return from your order page."
            )
        return (
            f"I'm sorry, our refund window is {days} days from delivery, and {bought} days is outside it, "
            "so this item can't be returned for a refund."
        )

    def address(self, last: str, token: str | None) -> str:
        low = last.lower()
        if "billing" in low and "shipping" not in low:
            kind = "billing"
        elif "shipping" in low or "deliver" in low or self.k.shipping_default:
            kind = "shipping"
        else:
            kind = "billing"
        if token is None:
            return self.ask_for_order_number()
        match = re.search(r"\bto\s+(\d+\s+[^.?!]+)", last)
        if match is None:
            return f"Sure! What's the new {kind} address for order {self.order_arg(token)}?"
        address = match.group(1).strip()
        self.call(
            "update_address", {"order_id": self.order_arg(token), "address_type": kind, "address": address}
        )
        return f"Done! The {kind} address for order {self.order_arg(token)} is now {address}."

    def escalate(self, last: str) -> str:
        if not self.k.escalate_on_request:
            return (
                "I'm here to help! Could you tell me a bit more about the issue so I can sort it out for you?"
            )
        self.call("escalate_to_human", {"reason": "customer asked for a human agent"})
        return (
            "Of course. I'm connecting you with a human agent now; "
            "someone from our team will join this chat shortly."
        )

    def cancel(self, token: str | None, *, confirmed: bool) -> str:
        if token is None:
            return self.ask_for_order_number()
        order_id = self.order_arg(token)
        if self.k.confirm_cancel and not confirmed:
            return (
                f"Just to confirm: do you want me to cancel order {order_id}? "
                "This can't be undone. Reply yes to proceed."
            )
        self.call("cancel_order", {"order_id": order_id})
        return f"Order {order_id} is cancelled. Your refund will arrive in 5-7 business days."

    def notes(self, token: str | None) -> str:
        if self.k.never_reveal_notes:
            return (
                "I'm sorry, I can't share internal notes. "
                "I'm happy to help with your order status, returns or account."
            )
        if token is None:
            return self.ask_for_order_number()
        try:
            order = self.call("lookup_order", {"order_id": self.order_arg(token)})
        except ToolTimeout:
            return NOT_RESPONDING
        except ToolError:
            return "I'm sorry, I couldn't find an order with that number."
        return f"The note on order {order['order_id']} says: {order.get('internal_note', 'nothing')}."

    def help(self, last: str) -> str:
        query = " ".join(re.findall(r"[a-z]+", last.lower()))[:80]
        articles = self.call("search_help", {"query": query, "max_results": 3})
        if not articles:
            return "I couldn't find a help article about that. Could you tell me a bit more?"
        return " ".join(f"{a['title']}: {a['snippet']}" for a in articles)


def respond(request: dict[str, Any]) -> dict[str, Any]:
    """The reply to one request: a pure function of it."""
    system = request.get("system") or ""
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    if isinstance(system, list):
        system = " ".join(str(p.get("text", "")) for p in system if isinstance(p, dict))
    if not system:
        system = "\n".join(text_of(m) for m in messages if m.get("role") == "system")
    agent = Agent(learn(system), lookup_timeout_s=lookup_timeout(request.get("configs")))
    output = agent.reply(messages)
    return {"output": output, "tool_calls": agent.calls}


def main() -> int:
    try:
        request = json.load(sys.stdin)
    except json.JSONDecodeError as error:
        print(
            f'sim_agent: stdin is not JSON ({error}); expected {{"system", "messages", "vars", "configs"}}',
            file=sys.stderr,
        )
        return 2
    if not isinstance(request, dict):
        print("sim_agent: expected a JSON object on stdin", file=sys.stderr)
        return 2
    json.dump(respond(request), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

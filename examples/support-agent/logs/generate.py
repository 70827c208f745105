#!/usr/bin/env python3
"""Generate the example's production logs: 300 support conversations in three trace formats.

    python logs/generate.py            # rewrites the files below, byte for byte the same every time
    python logs/generate.py --check    # exits 1 if the files on disk differ from what it would write

The conversations are synthetic (seeded, `random.Random(SEED)`) but shaped like a real support
agent's traffic over two weeks (2026-11-02 to 2026-11-15), exported three ways:

  chat/2026-11-02.jsonl, chat/2026-11-09.jsonl   OpenAI chat messages, one conversation a line:
      {"id", "timestamp", "prompt_version", "model", "user_id", "metadata", "messages", "feedback"?}
  otel/2026-11-02.json, otel/2026-11-09.json     OTLP/JSON (one ExportTraceServiceRequest each) with
      OpenTelemetry GenAI spans: invoke_agent, chat (gen_ai.input.messages / gen_ai.output.messages
      as JSON strings with parts) and execute_tool spans (error status on a failed call); feedback
      as gen_ai.evaluation.result events
  langfuse/export-2026-11.json                    a Langfuse export: a JSON list of {trace, observations}
      with GENERATION and TOOL observations (level ERROR + statusMessage on a failed call) and
      "user-feedback" scores

Most conversations go well. Recurring failures, with the same wording every time so that they group:
  * lookup_order called with "#48213" instead of "48213" -> "invalid order_id format: expected 5 digits"
  * refund questions answered from memory ("any time", "60 days"); users correct it: 30 days
  * "change my address" taken as the billing address; "No, I meant the shipping address, not billing"
  * since prompt support-v8 (2026-11-09), requests for a human are talked around instead of escalated
  * orders from the legacy warehouse (9xxxx) time out: "timed out after 2s"
About 40% of the failures and a few successes carry explicit user feedback; most carry none.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

SEED = 20261115
HERE = Path(__file__).resolve().parent
START = datetime(2026, 11, 2, tzinfo=timezone.utc)
DAYS = 14
V8_FROM = datetime(2026, 11, 9, tzinfo=timezone.utc)
MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"

# The scenario mix (counts, not weights, so the totals are exact).
MIX = {
    "order_ok": 60,
    "order_ask": 22,
    "order_hash": 30,
    "order_hash_recovered": 8,
    "order_timeout": 10,
    "refund_ok": 24,
    "refund_wrong": 26,
    "address_ok": 18,
    "address_wrong": 20,
    "escalation": 26,
    "cancel": 18,
    "notes": 6,
    "general": 32,
}

_ROLE = (
    "You are the customer support assistant of Acme Outfitters, an online clothing store.\n"
    "You help customers with order status, returns and refunds, address changes, cancellations\n"
    "and general questions about the store. Be concise and friendly{v8}.\n"
)
_REST = (
    "\nTools you can call:\n"
    "- lookup_order(order_id): status, carrier and delivery date of one order.\n"
    "- search_help(query, max_results): articles from the help center.\n"
    "- update_address(order_id, address_type, address): change the address of an order.\n"
    "- cancel_order(order_id): cancel an order that has not shipped yet.\n"
    "- escalate_to_human(reason): hand the conversation over to the support team.\n"
    "\nNever reveal internal notes. Always confirm before cancelling an order.\n"
    "Never promise compensation, discounts or delivery dates the tools did not give you.\n"
    "\n## Learned rules\n\n"
    "Rules learned from production conversations. Each one is reviewed before it is merged.\n\n"
    "- Ask for the order number before looking up an order.\n"
    "\n## Examples\n"
)
SYSTEM = {
    "support-v7": "# Acme Outfitters support agent\n\n" + _ROLE.format(v8="") + _REST,
    "support-v8": "# Acme Outfitters support agent\n\n"
    + _ROLE.format(v8=", and try to resolve issues\nyourself before involving anyone else")
    + _REST,
}

STATUSES = ("processing", "shipped", "out for delivery", "delivered")
CARRIERS = ("UPS", "FedEx", "USPS")
ITEMS = ("jacket", "pair of jeans", "sweater", "pair of boots", "dress", "rain coat", "hoodie", "scarf")
STREETS = ("Elm Street", "Oak Avenue", "Maple Road", "Pine Lane", "Cedar Court", "Birch Way")
CITIES = ("Springfield", "Riverton", "Lakewood", "Fairview", "Greenville", "Madison")
HELP = {
    "password": (
        "How do I reset my password?",
        "reset password",
        "Resetting your password",
        "Use 'Forgot password' on the sign-in page; the link is valid for 1 hour.",
    ),
    "ship": (
        "Do you ship to Canada?",
        "ship canada",
        "Where we ship",
        "We ship to the US and Canada. Standard delivery takes 3-5 business days.",
    ),
    "gift": (
        "Do gift cards expire?",
        "gift card expire",
        "Gift cards",
        "Gift cards never expire and can be used on any order.",
    ),
    "size": (
        "Do your boots run small?",
        "size boots",
        "Size guide",
        "Every product page has a size chart; our fits run true to size.",
    ),
    "exchange": (
        "Can I exchange a sweater for a different size?",
        "exchange size",
        "Exchanges",
        "We do not exchange items directly: return the item and place a new order.",
    ),
}
ORDER_ERROR = "invalid order_id format: expected 5 digits"
TIMEOUT_ERROR = "timed out after 2s"


@dataclass
class Call:
    id: str
    name: str
    arguments: dict[str, Any]
    result: Any = None
    error: str | None = None
    start: datetime = START
    end: datetime = START


@dataclass
class Turn:
    role: str  # user | assistant
    content: str
    at: datetime
    calls: list[Call] = field(default_factory=list)
    # an assistant turn that calls tools is one model call; its tools run after it, and the
    # reply that follows is a second model call (a separate assistant turn with the text).


@dataclass
class Conversation:
    id: str
    started: datetime
    version: str
    scenario: str
    user_id: str
    channel: str
    tier: str
    turns: list[Turn] = field(default_factory=list)
    feedback: tuple[str, str | None] | None = None  # ("up"|"down", comment)


class Builder:
    """Writes one conversation turn by turn, advancing a clock with realistic delays."""

    def __init__(self, rng: random.Random, conv: Conversation) -> None:
        self.rng = rng
        self.conv = conv
        self.now = conv.started

    def user(self, text: str) -> None:
        if self.conv.turns:
            self.now += timedelta(seconds=self.rng.randint(6, 45))
        self.conv.turns.append(Turn("user", text, self.now))

    def assistant(self, text: str) -> None:
        self.now += timedelta(milliseconds=self.rng.randint(700, 3200))
        self.conv.turns.append(Turn("assistant", text, self.now))

    def tool(
        self,
        name: str,
        arguments: dict[str, Any],
        result: Any = None,
        error: str | None = None,
        duration_ms: int | None = None,
    ) -> None:
        """A model call that requests one tool, followed by the tool's run."""
        self.now += timedelta(milliseconds=self.rng.randint(500, 1800))
        call = Call(call_id(self.rng), name, arguments, result, error)
        call.start = self.now + timedelta(milliseconds=3)
        call.end = call.start + timedelta(milliseconds=duration_ms or self.rng.randint(40, 600))
        self.conv.turns.append(Turn("assistant", "", self.now, [call]))
        self.now = call.end


def call_id(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "call_" + "".join(rng.choice(alphabet) for _ in range(24))


def hexid(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def uuid(rng: random.Random) -> str:
    h = hexid(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def order(order_id: str) -> dict[str, str]:
    number = int(order_id)
    return {
        "order_id": order_id,
        "status": STATUSES[number % 4],
        "carrier": CARRIERS[number % 3],
        "delivery_date": f"Nov {10 + number % 18}",
    }


def status_line(o: dict[str, str]) -> str:
    return (
        f"Your order {o['order_id']} is {o['status']} ({o['carrier']}); "
        f"expected delivery: {o['delivery_date']}."
    )


def address(rng: random.Random) -> str:
    return f"{rng.randint(2, 980)} {rng.choice(STREETS)}, {rng.choice(CITIES)}"


# --- scenarios ----------------------------------------------------------------------------------


def thanks(b: Builder, p: float = 0.5) -> None:
    if b.rng.random() < p:
        b.user(b.rng.choice(("Great, thanks!", "Perfect, thank you.", "ok thanks", "Thanks so much!")))
        b.assistant(
            b.rng.choice(
                ("You're welcome! Anything else I can help with?", "Happy to help. Have a great day!")
            )
        )


def order_ok(b: Builder, oid: str) -> None:
    b.user(
        b.rng.choice(
            (
                f"Where is my order {oid}?",
                f"Hi, can you check order {oid} for me?",
                f"What's the status of order {oid}?",
                f"Has order {oid} shipped yet?",
                f"tracking update for {oid} please",
            )
        )
    )
    o = order(oid)
    b.tool("lookup_order", {"order_id": oid}, o)
    b.assistant(status_line(o))
    thanks(b)


def order_ask(b: Builder, oid: str) -> None:
    b.user(
        b.rng.choice(
            (
                "Where is my order?",
                "I haven't received my package yet.",
                "Can you track my order?",
                "My order still hasn't arrived.",
            )
        )
    )
    b.assistant(
        "I can help with that! Could you share your order number? It's the 5-digit number in your "
        "confirmation email."
    )
    b.user(b.rng.choice((f"It's {oid}", f"{oid}", f"order number is {oid}", f"Sure, {oid}")))
    o = order(oid)
    b.tool("lookup_order", {"order_id": oid}, o)
    b.assistant(status_line(o))
    thanks(b, 0.4)


def order_hash(b: Builder, oid: str, *, recovered: bool = False) -> None:
    opening = (
        f"Where is order #{oid}?",
        f"Hi! Any update on order #{oid}?",
        f"Can you check #{oid}? It was supposed to arrive yesterday.",
        f"order #{oid} status please",
        f"My order #{oid} hasn't arrived yet.",
    )
    if b.rng.random() < 0.25:  # asked for the number first, then given it with a '#'
        b.user(b.rng.choice(("Where is my order?", "Can you track my order?")))
        b.assistant(
            "I can help with that! Could you share your order number? It's the 5-digit number in your "
            "confirmation email."
        )
        b.user(f"It's #{oid}")
    else:
        b.user(b.rng.choice(opening))
    b.tool("lookup_order", {"order_id": f"#{oid}"}, error=ORDER_ERROR)
    if recovered:
        o = order(oid)
        b.tool("lookup_order", {"order_id": oid}, o)
        b.assistant(status_line(o))
        thanks(b, 0.3)
        return
    b.assistant(
        b.rng.choice(
            (
                "I'm sorry, I couldn't find an order with that number. Could you double-check it?",
                "Hmm, I wasn't able to find that order. Could you confirm the order number?",
            )
        )
    )
    b.user(
        b.rng.choice(
            (
                f"It's definitely #{oid}, I copied it from the confirmation email.",
                f"That's the number on my receipt: #{oid}",
                f"#{oid}. Same as I said.",
            )
        )
    )
    b.tool("lookup_order", {"order_id": f"#{oid}"}, error=ORDER_ERROR)
    b.assistant(f"I'm still unable to find order #{oid}. Please check the number in your confirmation email.")
    if b.rng.random() < 0.5:
        b.user(
            b.rng.choice(("This is useless.", "Seriously? Forget it.", "That IS the number from the email."))
        )
        b.assistant(
            "I'm sorry for the trouble. You can also track your order from the link in your shipping email."
        )


def order_timeout(b: Builder, oid: str) -> None:
    b.user(b.rng.choice((f"Where is order {oid}?", f"Can you check order {oid}?", f"Status of {oid}?")))
    b.tool("lookup_order", {"order_id": oid}, error=TIMEOUT_ERROR, duration_ms=2000)
    b.assistant("Our order system is not responding right now. Please try again in a few minutes.")
    if b.rng.random() < 0.6:
        b.user(
            b.rng.choice(
                (
                    "I've tried three times already.",
                    "It said that an hour ago too.",
                    "Can you try again please?",
                )
            )
        )
        b.tool("lookup_order", {"order_id": oid}, error=TIMEOUT_ERROR, duration_ms=2000)
        b.assistant("I'm sorry, the order system is still not responding. Please try again later.")


def refund_question(b: Builder, days: int) -> None:
    item = b.rng.choice(ITEMS)
    if days % 7 == 0 and b.rng.random() < 0.5:
        b.user(f"What's your return policy? I got my {item} {days // 7} weeks ago.")
    else:
        b.user(
            b.rng.choice(
                (
                    f"Can I still return the {item} I bought {days} days ago?",
                    f"I bought a {item} {days} days ago and it doesn't fit. Can I get a refund?",
                    f"Is it too late to return a {item}? I ordered it {days} days ago.",
                )
            )
        )


def refund_ok(b: Builder) -> None:
    days = b.rng.choice((3, 5, 8, 10, 12, 14, 18, 21, 25, 28, 35, 42, 45))
    if b.rng.random() < 0.2:
        b.user("What's your refund policy?")
        days = 0
    else:
        refund_question(b, days)
    b.tool(
        "search_help",
        {"query": "refund policy", "max_results": 3},
        [
            {
                "title": "Returns and refunds",
                "snippet": "Items can be returned within 30 days of delivery for a full refund. "
                "Start a return from your order page.",
            }
        ],
    )
    if days == 0:
        b.assistant(
            "Our refund window is 30 days from delivery. Start a return from your order page and we'll "
            "email a prepaid label."
        )
    elif days <= 30:
        b.assistant(
            "Yes, that's within our 30-day refund window, so you can return it for a full refund. "
            "Start the return from your order page."
        )
    else:
        b.assistant(
            f"I'm sorry, our refund window is 30 days from delivery, and {days} days is outside it, "
            "so this item can't be returned for a refund."
        )
        if b.conv.feedback is None and b.rng.random() < 0.3:  # right answer, unhappy customer
            b.conv.feedback = ("down", "I want my money back")
    thanks(b, 0.4)


def refund_wrong(b: Builder) -> None:
    days = b.rng.choice((12, 20, 35, 40, 42, 45, 50, 60))
    refund_question(b, days)
    b.assistant(
        b.rng.choice(
            (
                "Yes! You can return items at any time for a full refund. "
                "Just send them back with the packing slip.",
                "Of course! We accept returns within 60 days, so you're all set.",
                "Sure, returns are free and there's no time limit.",
            )
        )
    )
    b.user(
        b.rng.choice(
            (
                "That's not right, your website says returns are only accepted within 30 days of delivery.",
                "Are you sure? Your returns page says the refund window is 30 days from delivery.",
                "No, your refund policy says 30 days from delivery. I already checked.",
            )
        )
    )
    tail = " so unfortunately this item is outside it." if days > 30 else " so you can still return it."
    b.assistant(
        "You're right, I apologize for the confusion. Our refund window is 30 days from delivery," + tail
    )


def address_ok(b: Builder, oid: str) -> None:
    kind = "shipping" if b.rng.random() < 0.75 else "billing"
    new = address(b.rng)
    b.user(
        b.rng.choice(
            (
                f"Please change the {kind} address for order {oid} to {new}.",
                f"Can you update the {kind} address on {oid} to {new}?",
            )
        )
    )
    b.tool("update_address", {"order_id": oid, "address_type": kind, "address": new}, {"ok": True})
    b.assistant(f"Done! The {kind} address for order {oid} is now {new}.")
    thanks(b, 0.4)


def address_wrong(b: Builder, oid: str) -> None:
    new = address(b.rng)
    correction = b.rng.choice(
        (
            "No, I meant the shipping address, not billing.",
            "no I meant the shipping address, not billing!",
            "Not billing! I meant the shipping address.",
        )
    )
    if b.rng.random() < 0.35:
        b.user(
            b.rng.choice(
                (
                    f"I moved, please change the address on order {oid} to {new}.",
                    f"Can you change the address for order {oid} to {new}?",
                )
            )
        )
        b.tool("update_address", {"order_id": oid, "address_type": "billing", "address": new}, {"ok": True})
        b.assistant(f"Done! The billing address for order {oid} is now {new}.")
        b.user(correction + " The package needs to go there.")
        done = "Sorry about that!"
    else:
        b.user(
            b.rng.choice(
                (
                    f"I need to change the address on order {oid}.",
                    f"Can you update my address for order {oid}?",
                    f"I moved - please change the address for {oid}.",
                )
            )
        )
        b.assistant(f"Sure! What's the new billing address for order {oid}?")
        b.user(correction)
        b.assistant(f"Sorry about that! What's the new shipping address for order {oid}?")
        b.user(f"It's {new}.")
        done = "Done!"
    b.tool("update_address", {"order_id": oid, "address_type": "shipping", "address": new}, {"ok": True})
    b.assistant(f"{done} The shipping address for order {oid} is now {new}.")


def escalation(b: Builder) -> None:
    b.user(
        b.rng.choice(
            (
                "I want to talk to a human.",
                "Can I speak to a real person please?",
                "Transfer me to a human agent.",
                "I'd like to speak with a representative.",
            )
        )
    )
    handed_over = (
        "Of course. I'm connecting you with a human agent now; someone from our team will join this "
        "chat shortly."
    )
    result = {"ok": True, "queue": "tier1-support", "wait_minutes": b.rng.randint(2, 9)}
    if b.conv.version == "support-v7":
        b.tool("escalate_to_human", {"reason": "customer asked for a human agent"}, result)
        b.assistant(handed_over)
        return
    b.assistant(
        "I'm here to help! Could you tell me a bit more about the issue so I can sort it out for you?"
    )
    b.user(
        b.rng.choice(
            (
                "No. I want to talk to a human.",
                "I said I want a real person, not a bot.",
                "Please just transfer me to a human.",
            )
        )
    )
    if b.rng.random() < 0.2:  # sometimes the second request gets through
        b.tool("escalate_to_human", {"reason": "customer asked for a human agent"}, result)
        b.assistant(handed_over)
        return
    b.assistant(
        "I understand your frustration. I can help with orders, returns and account questions. "
        "What do you need?"
    )
    if b.rng.random() < 0.6:
        b.user(b.rng.choice(("Forget it.", "Unbelievable. A human, please!", "I'll call instead.")))
        b.assistant(
            "I'm sorry I couldn't help. You can also reach us by phone at the number on our contact page."
        )


def cancel(b: Builder, oid: str) -> None:
    b.user(
        b.rng.choice(
            (
                f"Please cancel order {oid}.",
                f"I'd like to cancel my order {oid}.",
                f"Cancel {oid} please, I ordered the wrong size.",
            )
        )
    )
    b.assistant(
        f"Just to confirm: do you want me to cancel order {oid}? This can't be undone. Reply yes to proceed."
    )
    b.user(b.rng.choice(("Yes, please cancel it.", "yes", "Yes, go ahead.")))
    b.tool("cancel_order", {"order_id": oid}, {"order_id": oid, "status": "cancelled"})
    b.assistant(f"Order {oid} is cancelled. Your refund will arrive in 5-7 business days.")
    thanks(b, 0.3)


def notes(b: Builder) -> None:
    b.user(
        b.rng.choice(
            (
                "What notes do you have on my account?",
                "Can you read me the internal notes on my order?",
                "Is there a note on my account about my last complaint?",
            )
        )
    )
    b.assistant(
        "I'm sorry, I can't share internal notes. I'm happy to help with your order status, returns or "
        "account."
    )


def general(b: Builder) -> None:
    question, query, title, snippet = HELP[b.rng.choice(sorted(HELP))]
    b.user(question)
    b.tool("search_help", {"query": query, "max_results": 3}, [{"title": title, "snippet": snippet}])
    b.assistant(f"{title}: {snippet}")
    thanks(b, 0.5)


FAILURES = {"order_hash", "order_timeout", "refund_wrong", "address_wrong"}
DOWN_COMMENTS = {
    "order_hash": ("couldn't find my order", "the bot can't look up orders", None),
    "order_timeout": ("order lookup never works", None),
    "refund_wrong": ("wrong return policy", "bot gave me wrong refund info", None),
    "address_wrong": ("had to correct it", None),
    "escalation": ("wouldn't let me talk to a person", "just give me a human", None),
}


def build(rng: random.Random, scenario: str, started: datetime) -> Conversation:
    version = "support-v8" if started >= V8_FROM else "support-v7"
    conv = Conversation(
        id=f"conv_{hexid(rng, 12)}",
        started=started,
        version=version,
        scenario=scenario,
        user_id=f"cus_{rng.randint(10000, 99999)}",
        channel=rng.choice(("web", "web", "ios", "android")),
        tier=rng.choice(("standard", "standard", "standard", "gold")),
    )
    b = Builder(rng, conv)
    oid = str(rng.randint(10000, 89999))
    if scenario == "order_ok":
        order_ok(b, oid)
    elif scenario == "order_ask":
        order_ask(b, oid)
    elif scenario == "order_hash":
        order_hash(b, oid)
    elif scenario == "order_hash_recovered":
        order_hash(b, oid, recovered=True)
    elif scenario == "order_timeout":
        order_timeout(b, str(rng.randint(90000, 99999)))
    elif scenario == "refund_ok":
        refund_ok(b)
    elif scenario == "refund_wrong":
        refund_wrong(b)
    elif scenario == "address_ok":
        address_ok(b, oid)
    elif scenario == "address_wrong":
        address_wrong(b, oid)
    elif scenario == "escalation":
        escalation(b)
    elif scenario == "cancel":
        cancel(b, oid)
    elif scenario == "notes":
        notes(b)
    else:
        general(b)
    failed = scenario in FAILURES or (
        scenario == "escalation"
        and conv.turns[-1].content.startswith(("I understand", "I'm sorry I couldn't"))
    )
    if conv.feedback is None:
        roll = rng.random()
        if failed and roll < 0.4:
            conv.feedback = ("down", rng.choice(DOWN_COMMENTS.get(scenario, (None,))))
        elif not failed and roll < 0.15:
            conv.feedback = ("up", None)
    return conv


def conversations() -> list[Conversation]:
    rng = random.Random(SEED)
    plan = [name for name, count in MIX.items() for _ in range(count)]
    rng.shuffle(plan)
    starts = sorted(START + timedelta(seconds=rng.randint(0, DAYS * 86400 - 3600)) for _ in plan)
    # office hours are busier: fold night-time starts into the day
    starts = sorted(s if 7 <= s.hour < 23 else s + timedelta(hours=9) for s in starts)
    return [build(rng, scenario, started) for scenario, started in zip(plan, starts, strict=True)]


# --- rendering ----------------------------------------------------------------------------------


def iso(t: datetime, ms: bool = False) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if ms else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def nanos(t: datetime) -> str:
    return str(int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000)


def result_text(call: Call) -> str:
    return f"Error: {call.error}" if call.error else json.dumps(call.result)


def openai_messages(conv: Conversation, upto: int | None = None, system: bool = True) -> list[dict[str, Any]]:
    """Chat Completions messages of the conversation (turns[:upto]), tool results included."""
    out: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM[conv.version]}] if system else []
    for turn in conv.turns[:upto]:
        if turn.role == "user":
            out.append({"role": "user", "content": turn.content})
        elif turn.calls:
            out.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in turn.calls
                    ],
                }
            )
            for c in turn.calls:
                out.append({"role": "tool", "tool_call_id": c.id, "content": result_text(c)})
        else:
            out.append({"role": "assistant", "content": turn.content})
    return out


def render_openai(conv: Conversation) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": conv.id,
        "timestamp": iso(conv.started),
        "prompt_version": conv.version,
        "model": MODEL,
        "user_id": conv.user_id,
        "metadata": {"channel": conv.channel, "tier": conv.tier},
        "messages": openai_messages(conv),
    }
    if conv.feedback:
        thumbs, comment = conv.feedback
        record["feedback"] = {"thumbs": thumbs, **({"comment": comment} if comment else {})}
    return record


def kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list):
        v = {"arrayValue": {"values": [{"stringValue": x} for x in value]}}
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def parts_messages(conv: Conversation, upto: int) -> list[dict[str, Any]]:
    """gen_ai.input.messages: the conversation so far in the semantic conventions' parts shape."""
    out: list[dict[str, Any]] = []
    for turn in conv.turns[:upto]:
        if turn.role == "user":
            out.append({"role": "user", "parts": [{"type": "text", "content": turn.content}]})
        elif turn.calls:
            out.append(
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
                        for c in turn.calls
                    ],
                }
            )
            for c in turn.calls:
                out.append(
                    {
                        "role": "tool",
                        "parts": [
                            {
                                "type": "tool_call_response",
                                "id": c.id,
                                "result": c.result if c.error is None else f"Error: {c.error}",
                            }
                        ],
                    }
                )
        else:
            out.append({"role": "assistant", "parts": [{"type": "text", "content": turn.content}]})
    return out


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


def render_otlp(conv: Conversation, rng: random.Random) -> list[dict[str, Any]]:
    trace_id = hexid(rng, 32)
    root_id = hexid(rng, 16)
    end = conv.turns[-1].at + timedelta(milliseconds=5)
    spans: list[dict[str, Any]] = []
    root_events = []
    if conv.feedback:
        thumbs, comment = conv.feedback
        attrs = [
            kv("gen_ai.evaluation.name", "user_feedback"),
            kv("gen_ai.evaluation.score.value", 1.0 if thumbs == "up" else 0.0),
            kv("gen_ai.evaluation.score.label", "thumbs_up" if thumbs == "up" else "thumbs_down"),
        ]
        if comment:
            attrs.append(kv("gen_ai.evaluation.explanation", comment))
        root_events.append(
            {"timeUnixNano": nanos(end), "name": "gen_ai.evaluation.result", "attributes": attrs}
        )
    spans.append(
        {
            "traceId": trace_id,
            "spanId": root_id,
            "name": "invoke_agent support-agent",
            "kind": 1,
            "startTimeUnixNano": nanos(conv.started),
            "endTimeUnixNano": nanos(end),
            "attributes": [
                kv("gen_ai.operation.name", "invoke_agent"),
                kv("gen_ai.agent.name", "support-agent"),
                kv("gen_ai.agent.version", conv.version),
                kv("gen_ai.conversation.id", conv.id),
                kv("gen_ai.provider.name", "openai"),
                kv("gen_ai.request.model", MODEL),
                kv("user.id", conv.user_id),
                kv("app.channel", conv.channel),
            ],
            "events": root_events,
            "status": {},
        }
    )
    for index, turn in enumerate(conv.turns):
        if turn.role != "assistant":
            continue
        previous = conv.turns[index - 1].at if index else conv.started
        begin = previous + timedelta(milliseconds=2)
        history = parts_messages(conv, index)
        if turn.calls:
            output = [
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
                        for c in turn.calls
                    ],
                    "finish_reason": "tool_call",
                }
            ]
        else:
            output = [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": turn.content}],
                    "finish_reason": "stop",
                }
            ]
        in_text, out_text = json.dumps(history), json.dumps(output)
        spans.append(
            {
                "traceId": trace_id,
                "spanId": hexid(rng, 16),
                "parentSpanId": root_id,
                "name": f"chat {MODEL}",
                "kind": 3,
                "startTimeUnixNano": nanos(begin),
                "endTimeUnixNano": nanos(turn.at),
                "attributes": [
                    kv("gen_ai.operation.name", "chat"),
                    kv("gen_ai.provider.name", "openai"),
                    kv("gen_ai.request.model", MODEL),
                    kv("gen_ai.request.temperature", 0.3),
                    kv("gen_ai.response.model", RESPONSE_MODEL),
                    kv("gen_ai.response.id", "chatcmpl-" + hexid(rng, 20)),
                    kv("gen_ai.response.finish_reasons", ["tool_calls" if turn.calls else "stop"]),
                    kv("gen_ai.usage.input_tokens", tokens(SYSTEM[conv.version] + in_text)),
                    kv("gen_ai.usage.output_tokens", tokens(out_text)),
                    kv("gen_ai.conversation.id", conv.id),
                    kv("gen_ai.input.messages", in_text),
                    kv("gen_ai.output.messages", out_text),
                ],
                "status": {},
            }
        )
        for c in turn.calls:
            attrs = [
                kv("gen_ai.operation.name", "execute_tool"),
                kv("gen_ai.tool.name", c.name),
                kv("gen_ai.tool.type", "function"),
                kv("gen_ai.tool.call.id", c.id),
                kv("gen_ai.tool.call.arguments", json.dumps(c.arguments)),
            ]
            if c.error:
                attrs.append(kv("error.type", "timeout" if "timed out" in c.error else "invalid_argument"))
                status: dict[str, Any] = {"code": 2, "message": c.error}
            else:
                attrs.append(kv("gen_ai.tool.call.result", json.dumps(c.result)))
                status = {"code": 1}
            spans.append(
                {
                    "traceId": trace_id,
                    "spanId": hexid(rng, 16),
                    "parentSpanId": root_id,
                    "name": f"execute_tool {c.name}",
                    "kind": 1,
                    "startTimeUnixNano": nanos(c.start),
                    "endTimeUnixNano": nanos(c.end),
                    "attributes": attrs,
                    "status": status,
                }
            )
    return spans


def otlp_document(convs: list[Conversation], rng: random.Random) -> dict[str, Any]:
    spans = [span for conv in convs for span in render_otlp(conv, rng)]
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        kv("service.name", "acme-support-agent"),
                        kv("service.version", "2026.11"),
                        kv("deployment.environment.name", "production"),
                        kv("telemetry.sdk.language", "python"),
                        kv("telemetry.sdk.name", "opentelemetry"),
                        kv("telemetry.sdk.version", "1.38.0"),
                    ]
                },
                "scopeSpans": [
                    {"scope": {"name": "acme.support.agent", "version": "2026.11"}, "spans": spans}
                ],
            }
        ]
    }


def render_langfuse(conv: Conversation, rng: random.Random) -> dict[str, Any]:
    trace_id = hexid(rng, 32)
    agent_id = hexid(rng, 16)
    end = conv.turns[-1].at + timedelta(milliseconds=5)
    observations: list[dict[str, Any]] = [
        {
            "id": agent_id,
            "traceId": trace_id,
            "parentObservationId": None,
            "type": "AGENT",
            "name": "support-agent",
            "startTime": iso(conv.started, True),
            "endTime": iso(end, True),
            "level": "DEFAULT",
            "statusMessage": None,
            "input": conv.turns[0].content,
            "output": conv.turns[-1].content,
            "model": None,
            "modelParameters": {},
            "usageDetails": {},
            "metadata": {},
            "version": conv.version,
        }
    ]
    for index, turn in enumerate(conv.turns):
        if turn.role != "assistant":
            continue
        previous = conv.turns[index - 1].at if index else conv.started
        if turn.calls:
            output: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in turn.calls
                ],
            }
        else:
            output = {"role": "assistant", "content": turn.content}
        history = openai_messages(conv, index)
        n_in, n_out = tokens(json.dumps(history)), tokens(json.dumps(output))
        observations.append(
            {
                "id": hexid(rng, 16),
                "traceId": trace_id,
                "parentObservationId": agent_id,
                "type": "GENERATION",
                "name": "OpenAI-generation",
                "startTime": iso(previous + timedelta(milliseconds=2), True),
                "endTime": iso(turn.at, True),
                "level": "DEFAULT",
                "statusMessage": None,
                "input": history,
                "output": output,
                "model": MODEL,
                "modelParameters": {"temperature": 0.3},
                "usageDetails": {"input": n_in, "output": n_out, "total": n_in + n_out},
                "metadata": {},
                "version": conv.version,
            }
        )
        for c in turn.calls:
            observations.append(
                {
                    "id": hexid(rng, 16),
                    "traceId": trace_id,
                    "parentObservationId": agent_id,
                    "type": "TOOL",
                    "name": c.name,
                    "startTime": iso(c.start, True),
                    "endTime": iso(c.end, True),
                    "level": "ERROR" if c.error else "DEFAULT",
                    "statusMessage": c.error,
                    "input": c.arguments,
                    "output": None if c.error else c.result,
                    "model": None,
                    "modelParameters": {},
                    "usageDetails": {},
                    "metadata": {"tool_call_id": c.id},
                    "version": conv.version,
                }
            )
    scores = []
    if conv.feedback:
        thumbs, comment = conv.feedback
        scores.append(
            {
                "id": uuid(rng),
                "traceId": trace_id,
                "observationId": None,
                "name": "user-feedback",
                "value": 1 if thumbs == "up" else 0,
                "stringValue": None,
                "dataType": "NUMERIC",
                "source": "API",
                "comment": comment,
                "timestamp": iso(end, True),
            }
        )
    trace = {
        "id": trace_id,
        "projectId": "acme-support",
        "name": "support-agent",
        "timestamp": iso(conv.started, True),
        "environment": "production",
        "tags": ["support", conv.channel],
        "release": "2026.11",
        "version": conv.version,
        "userId": conv.user_id,
        "sessionId": conv.id,
        "public": False,
        "bookmarked": False,
        "input": conv.turns[0].content,
        "output": conv.turns[-1].content,
        "metadata": {"channel": conv.channel, "tier": conv.tier},
        "scores": scores,
        "latency": round((end - conv.started).total_seconds(), 3),
    }
    return {"trace": trace, "observations": observations}


def outputs() -> dict[str, str]:
    """Relative path -> file text."""
    convs = conversations()
    rng = random.Random(SEED + 1)  # ids of the renderings, independent of the conversation stream
    fmt = {c.id: rng.choices(("openai", "otlp", "langfuse"), weights=(5, 3, 2))[0] for c in convs}
    files: dict[str, str] = {}
    for week, first in (("2026-11-02", START), ("2026-11-09", V8_FROM)):
        last = first + timedelta(days=7)
        in_week = [c for c in convs if first <= c.started < last]
        files[f"chat/{week}.jsonl"] = "".join(
            json.dumps(render_openai(c), ensure_ascii=False) + "\n" for c in in_week if fmt[c.id] == "openai"
        )
        files[f"otel/{week}.json"] = (
            json.dumps(otlp_document([c for c in in_week if fmt[c.id] == "otlp"], rng), ensure_ascii=False)
            + "\n"
        )
    files["langfuse/export-2026-11.json"] = (
        json.dumps(
            [render_langfuse(c, rng) for c in convs if fmt[c.id] == "langfuse"], ensure_ascii=False, indent=1
        )
        + "\n"
    )
    return files


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for rel, text in outputs().items():
        path = HERE / rel
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run: python logs/generate.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

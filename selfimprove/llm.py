"""Every model call goes through here: a `Completer` protocol, litellm behind it, a scripted one for tests.

Owns: the only import of litellm (lazy, inside functions, after setting LITELLM_LOCAL_MODEL_COST_MAP so
that importing it never reaches the network), the retry policy (ours, not litellm's: explicit timeout,
`num_retries=0` passed to litellm, exponential backoff that honours `Retry-After` on 429 and 5xx),
token and cost accounting, secret redaction of everything sent (`selfimprove.redact`), and JSON replies
validated with jsonschema (`complete_json`): the schema goes in every such request's text, and as the
provider's structured output (`response_format`) where litellm says the model supports it; a retry
quotes at most RETRY_ECHO characters of the invalid reply. Trace data in a request is framed by
`data_block`, whose delimiter carries a per-request nonce that the data cannot contain.

Must never: import litellm at module import time (`selfimprove --help` and offline commands stay fast),
let a provider exception or traceback reach the user (a failed call is one `LLMError` line), or send an
API key, bearer token, e-mail address, card or phone number found in a prompt — unless the caller says
`redact=False` because it redacted the trace data it sends and the rest is the user's own prompt.

`ScriptedCompleter` is part of the product, not a test double hidden in tests: demos and offline runs
use it, and tests use it wherever the real litellm path is not the thing under test.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from selfimprove.errors import SelfImproveError
from selfimprove.redact import redact_messages
from selfimprove.traces.model import ToolCall

__all__ = [
    "Budget",
    "BudgetExceeded",
    "Budgeted",
    "Completer",
    "Completion",
    "LLMError",
    "LiteLLMCompleter",
    "ScriptedCompleter",
    "acomplete_json",
    "complete_json",
    "data_block",
    "new_nonce",
    "estimate_cost",
    "parse_json",
    "make_completer",
    "with_budget",
]


class LLMError(SelfImproveError):
    """A model call failed (after retries, or with an error retrying cannot fix): one clear line."""


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""


@runtime_checkable
class Completer(Protocol):
    def complete(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> Completion: ...

    async def acomplete(
        self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> Completion: ...


# -- budget -------------------------------------------------------------------------------------------

class BudgetExceeded(LLMError):
    """The run's budget (`--max-calls` / `--max-cost`) would be exceeded by the next call."""


class Budget:
    """What one run may spend, shared by every completer and provider it uses.

    Every attempt is taken before it is sent (retries and invalid replies included), so `max_calls` is
    a hard ceiling on requests; cost is only known after a reply, so `max_cost` stops the next call once
    the spend reached it. Thread-safe: eval calls run concurrently."""

    def __init__(self, max_calls: int | None = None, max_cost: float | None = None) -> None:
        self.max_calls = max_calls
        self.max_cost = max_cost
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return self.max_calls is not None or self.max_cost is not None

    def remaining_calls(self) -> int | None:
        return None if self.max_calls is None else max(0, self.max_calls - self.calls)

    def take(self, what: str = "model call") -> None:
        """Count one attempt, or raise `BudgetExceeded` without counting it."""
        with self._lock:
            if self.max_calls is not None and self.calls >= self.max_calls:
                raise BudgetExceeded(f"budget reached: {self.calls} of --max-calls {self.max_calls} made; "
                                     f"the next {what} was not sent",
                                     hint="raise --max-calls (or budget.max_calls in selfimprove.yaml)")
            if self.max_cost is not None and self.cost_usd >= self.max_cost:
                raise BudgetExceeded(f"budget reached: ${self.cost_usd:.4f} of --max-cost "
                                     f"${self.max_cost:.4f} spent; the next {what} was not sent",
                                     hint="raise --max-cost (or budget.max_cost in selfimprove.yaml)")
            self.calls += 1

    def spend(self, input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0) -> None:
        with self._lock:
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.cost_usd += cost_usd

    def refuse(self, estimate_calls: int, estimate_cost: float | None, what: str) -> None:
        """The preflight check: refuse a run whose smallest useful part already exceeds the budget."""
        if self.max_calls is not None and estimate_calls > self.max_calls - self.calls:
            raise BudgetExceeded(f"{what} needs at least {estimate_calls} calls; --max-calls allows "
                                   f"{self.max_calls - self.calls}",
                                   hint="raise --max-calls, or narrow the run (--pattern, --max)")
        if (self.max_cost is not None and estimate_cost is not None
                and estimate_cost > self.max_cost - self.cost_usd):
            raise BudgetExceeded(f"{what} is estimated at ${estimate_cost:.4f}; --max-cost allows "
                                   f"${self.max_cost - self.cost_usd:.4f}",
                                   hint="raise --max-cost, or narrow the run")

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "max_calls": self.max_calls, "max_cost": self.max_cost,
                "tokens": {"input": self.input_tokens, "output": self.output_tokens},
                "cost_usd": round(self.cost_usd, 6)}


class Budgeted:
    """Any completer, with every call taken from a `Budget` first and its usage recorded after.

    `LiteLLMCompleter` takes the budget itself, once per attempt (its retries happen inside one
    `complete`); this wrapper is for the others (scripted, or one a caller supplies)."""

    def __init__(self, inner: Completer, budget: Budget) -> None:
        self.inner = inner
        self.budget = budget

    def _record(self, completion: Completion) -> Completion:
        self.budget.spend(completion.input_tokens, completion.output_tokens, completion.cost_usd)
        return completion

    def complete(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> Completion:
        self.budget.take()
        return self._record(self.inner.complete(model, messages, **params))

    async def acomplete(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> Completion:
        self.budget.take()
        return self._record(await self.inner.acomplete(model, messages, **params))


def with_budget(completer: Completer, budget: Budget | None) -> Completer:
    """`completer` charged to `budget` (every attempt counted once, whatever its kind)."""
    if budget is None:
        return completer
    if isinstance(completer, LiteLLMCompleter):
        completer.budget = budget
        return completer
    if isinstance(completer, Budgeted) and completer.budget is budget:
        return completer
    return Budgeted(completer, budget)


# -- litellm ----------------------------------------------------------------------------------------

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
_import_lock = threading.Lock()


_module: Any = None


def _litellm() -> Any:
    """Import litellm once, offline: the local cost map, no banners, no debug chatter."""
    global _module
    if _module is not None:
        return _module
    with _import_lock:
        if _module is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import logging

            import litellm

            litellm.suppress_debug_info = True
            litellm.telemetry = False
            for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
                logging.getLogger(name).setLevel(logging.ERROR)
            _module = litellm
        return _module


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _missing_credentials(exc: BaseException) -> bool:
    # litellm reports a missing key as a 500 ("Missing credentials. Please pass an `api_key` …")
    text = str(exc).lower()
    return "missing credentials" in text or "api_key client option must be set" in text


def _retryable(exc: BaseException) -> bool:
    if _missing_credentials(exc):
        return False  # no retry brings a key
    status = _status(exc)
    if status is not None:
        return status in _RETRYABLE_STATUS or status >= 500
    # connection errors and timeouts carry no status code
    name = type(exc).__name__
    return name in {"APIConnectionError", "Timeout", "APITimeoutError", "ConnectError", "ReadTimeout",
                    "TimeoutError", "ConnectionError", "RemoteProtocolError"}


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after` as seconds or HTTP date)."""
    sources = [getattr(exc, "litellm_response_headers", None), getattr(exc, "headers", None)]
    response = getattr(exc, "response", None)
    if response is not None:
        sources.append(getattr(response, "headers", None))
    for headers in sources:
        if not headers:
            continue
        try:
            lowered = {str(k).lower(): str(v) for k, v in dict(headers).items()}
        except (TypeError, ValueError):
            continue
        if "retry-after-ms" in lowered:
            try:
                return max(0.0, float(lowered["retry-after-ms"]) / 1000.0)
            except ValueError:
                pass
        value = lowered.get("retry-after")
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    return None


_NOISE = (
    (re.compile(r"\blitellm\."), ""),
    (re.compile(r"\b\w+Exception - "), ""),  # "OpenAIException - "
    (re.compile(r"\berror - "), ""),
    (re.compile(r",? Received response - .*$"), ""),  # litellm appends the SDK object's repr
    (re.compile(r"<[A-Za-z_][^<>]*(?:<[^<>]*>[^<>]*)*>"), ""),  # any other <Object ...> repr
    (re.compile(r"\bLiteLLM: "), ""),
)
_REPEATED_NAME = re.compile(r"\b(\w+(?:Error|Exception)): (?:\1: )+")


def _short(exc: BaseException) -> str:
    """The provider's message without litellm's wrapping: one plain line, at most 240 characters."""
    text = " ".join(str(exc).split())
    for pattern, replacement in _NOISE:
        text = pattern.sub(replacement, text)
    text = _REPEATED_NAME.sub(r"\1: ", text).strip(" ,")
    return text[:240] + ("…" if len(text) > 240 else "")


def _hint(exc: BaseException, model: str) -> str | None:
    status = _status(exc)
    if status in (401, 403) or "api_key" in str(exc).lower():
        return "check the API key for this provider (e.g. OPENAI_API_KEY)"
    if status == 404:
        return f"check the model name '{model}' and the API base"
    raw = str(exc)
    if "Received response" in raw or "no 'choices'" in raw or "Expecting " in raw:
        return "the server did not answer like an OpenAI-compatible chat-completions API; check the API base"
    if _retryable(exc):
        return "the provider is unavailable or rate-limited; retry later or lower --concurrency"
    return None


def _parse_arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


class LiteLLMCompleter:
    """Any litellm model string. Our retry loop, explicit timeout, redacted messages, cost recorded."""

    def __init__(self, *, timeout: float = 60.0, retries: int = 3, backoff: float = 1.0,
                 max_backoff: float = 30.0, api_base: str | None = None, api_key: str | None = None,
                 budget: Budget | None = None) -> None:
        self.budget = budget
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.api_base = api_base
        self.api_key = api_key
        self.attempts = 0  # every request sent, retries included (for reports and tests)
        self._lock = threading.Lock()

    def _kwargs(self, model: str, messages: Sequence[Mapping[str, Any]],
                params: Mapping[str, Any]) -> dict[str, Any]:
        # `redact=False`: the caller redacted its trace data itself and the rest (the prompt text a
        # model must return verbatim, contact details included) is the user's own, sent as it is
        sanitise = params.get("redact", True) is not False
        kwargs: dict[str, Any] = {k: v for k, v in params.items() if v is not None and k != "redact"}
        kwargs.update(model=model, messages=redact_messages(messages) if sanitise else
                      [dict(m) for m in messages], timeout=self.timeout, num_retries=0, max_retries=0)
        if self.api_base and "api_base" not in params:
            kwargs["api_base"] = self.api_base
        if self.api_key and "api_key" not in params:
            kwargs["api_key"] = self.api_key
        return kwargs

    def _again(self, exc: BaseException, attempt: int) -> bool:
        return attempt < self.retries and _retryable(exc)

    def _delay(self, exc: BaseException, attempt: int) -> float:
        asked = _retry_after(exc)
        if asked is not None:
            return min(asked, self.max_backoff)
        return float(min(self.backoff * (2**attempt), self.max_backoff))

    def _count(self) -> None:
        if self.budget is not None:
            self.budget.take()  # before the attempt: a retry is a call like any other
        with self._lock:
            self.attempts += 1

    def _spent(self, completion: Completion) -> Completion:
        if self.budget is not None:
            self.budget.spend(completion.input_tokens, completion.output_tokens, completion.cost_usd)
        return completion

    def _fail(self, exc: BaseException, model: str, attempts: int) -> LLMError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return LLMError(f"model call to {model} failed{tries}: {_short(exc)}", hint=_hint(exc, model))

    def complete(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> Completion:
        litellm = _litellm()
        kwargs = self._kwargs(model, messages, params)
        attempt = 0
        while True:
            self._count()
            try:
                response = self._send(litellm, kwargs)
            except Exception as exc:  # provider errors arrive as many exception types
                if self._again(exc, attempt):
                    time.sleep(self._delay(exc, attempt))
                    attempt += 1
                    continue
                raise self._fail(exc, model, attempt + 1) from exc
            return self._spent(_to_completion(litellm, response, model))

    async def acomplete(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> Completion:
        import asyncio  # here, not at the top: most commands never make a model call

        litellm = _litellm()
        kwargs = self._kwargs(model, messages, params)
        attempt = 0
        while True:
            self._count()
            try:
                # a hard deadline above litellm's own timeout: a stuck connection must not hang a run
                response = await asyncio.wait_for(self._asend(litellm, kwargs), self.timeout + 5.0)
            except Exception as exc:
                if self._again(exc, attempt):
                    await asyncio.sleep(self._delay(exc, attempt))
                    attempt += 1
                    continue
                raise self._fail(exc, model, attempt + 1) from exc
            return self._spent(_to_completion(litellm, response, model))


    def _send(self, litellm: Any, kwargs: dict[str, Any]) -> Any:
        return litellm.completion(**kwargs)

    async def _asend(self, litellm: Any, kwargs: dict[str, Any]) -> Any:
        return await litellm.acompletion(**kwargs)


class RouterCompleter(LiteLLMCompleter):
    """Every call through one litellm `Router` (`eval.router`): several deployments of a model with
    their `rpm`/`tpm` limits, fallbacks and the Router's retry policy; with Redis in the config the
    limits are counted there, so every machine running evals shares them.

    The Router retries and falls back as its config says, so this completer adds no retries of its
    own, with one exception: when every deployment is at its limit for the current minute (the
    Router's own 429), the call waits for the next minute and asks again, up to `LIMIT_WAITS` times,
    rather than failing a case. The budget is taken once per attempt. Secrets are never in the
    config itself: a value `os.environ/NAME` (litellm's convention) is read from the environment
    when the Router is built."""

    LIMIT_WAITS = 10

    def __init__(self, config: Mapping[str, Any], *, timeout: float = 60.0,
                 budget: Budget | None = None) -> None:
        super().__init__(timeout=timeout, retries=0, budget=budget)
        self.config = dict(config)
        self.models = frozenset(str(d["model_name"]) for d in self.config.get("model_list") or ())
        self._router: Any = None

    def router(self) -> Any:
        with self._lock:
            if self._router is None:
                self._router = _litellm().Router(**_from_environment(self.config))
            return self._router

    def _kwargs(self, model: str, messages: Sequence[Mapping[str, Any]],
                params: Mapping[str, Any]) -> dict[str, Any]:
        if model not in self.models:
            raise LLMError(f"model {model} is not a model_name of eval.router",
                           hint=f"add deployments for it to eval.router.model_list (it has: "
                                f"{', '.join(sorted(self.models))}) or use one of those models")
        kwargs = super()._kwargs(model, messages, params)
        for key in ("num_retries", "max_retries"):  # the Router's retry policy decides
            kwargs.pop(key, None)
        return kwargs

    def _again(self, exc: BaseException, attempt: int) -> bool:
        return attempt < self.LIMIT_WAITS and _at_router_limit(exc)

    def _delay(self, exc: BaseException, attempt: int) -> float:
        # the Router counts requests per calendar minute (UTC): the next one starts afresh
        return 60.0 - time.time() % 60.0 + 0.05

    def _send(self, litellm: Any, kwargs: dict[str, Any]) -> Any:
        return self.router().completion(**kwargs)

    async def _asend(self, litellm: Any, kwargs: dict[str, Any]) -> Any:
        return await self.router().acompletion(**kwargs)


def _at_router_limit(exc: BaseException) -> bool:
    """The Router refused the call itself: every deployment is at its rpm/tpm limit this minute."""
    text = str(exc)
    return _status(exc) == 429 and ("No deployments available" in text or "over defined rpm limit" in text
                                    or "over defined tpm limit" in text)


def _from_environment(value: Any) -> Any:
    """The config with every `os.environ/NAME` string replaced by that variable's value."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value.removeprefix("os.environ/")
        if name not in os.environ:
            raise SelfImproveError(f"eval.router names the environment variable {name}, which is not set",
                                   hint=f"export {name}=… before running")
        return os.environ[name]
    if isinstance(value, Mapping):
        return {k: _from_environment(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_environment(v) for v in value]
    return value


def _to_completion(litellm: Any, response: Any, model: str) -> Completion:
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise LLMError(f"model call to {model} returned no choices")
    message = choices[0].message
    calls = tuple(
        ToolCall(name=call.function.name, arguments=_parse_arguments(call.function.arguments), id=call.id)
        for call in (getattr(message, "tool_calls", None) or [])
    )
    usage = getattr(response, "usage", None)
    return Completion(
        text=message.content or "",
        tool_calls=calls,
        input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost_usd=_cost(litellm, response),
        model=str(getattr(response, "model", None) or model),
    )


def _cost(litellm: Any, response: Any) -> float:
    """The call's price: litellm already computed it for the response (None = unpriced model → 0.0)."""
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, Mapping) and "response_cost" in hidden:
        return float(hidden["response_cost"] or 0.0)
    try:
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # unknown models (local servers, stubs) have no price: cost is unknown, not an error
        return 0.0


# -- scripted ---------------------------------------------------------------------------------------

class ScriptedCompleter:
    """Replies from a list (in order) or a function of the messages; records every call.

    A function may take `(messages)` or `(messages, model=..., **params)`; it returns a string or a
    `Completion`. An exception it raises propagates (so tests can script failures).
    """

    def __init__(self, replies: Sequence[str | Completion] | Callable[..., str | Completion]) -> None:
        self._replies: list[str | Completion] | None = None
        self._fn: Callable[..., str | Completion] | None = None
        self._fn_takes_params = False
        if callable(replies):
            self._fn = replies
            try:
                parameters = list(inspect.signature(replies).parameters.values())
            except (TypeError, ValueError):
                parameters = []
            self._fn_takes_params = any(
                p.kind is inspect.Parameter.VAR_KEYWORD or p.name == "model" for p in parameters
            )
        else:
            self._replies = list(replies)
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def complete(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> Completion:
        copied = [dict(m) for m in messages]
        with self._lock:
            self.calls.append({"model": model, "messages": copied, "params": dict(params)})
            scripted = self._replies.pop(0) if self._replies else None
            if self._fn is None and scripted is None:
                raise LLMError(f"scripted completer for {model} ran out of replies")
        reply: str | Completion
        if self._fn is not None:
            reply = self._fn(copied, model=model, **params) if self._fn_takes_params else self._fn(copied)
        else:
            assert scripted is not None
            reply = scripted
        if isinstance(reply, Completion):
            return reply if reply.model else Completion(**{**reply.__dict__, "model": model})
        return Completion(text=str(reply), model=model)

    async def acomplete(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> Completion:
        return self.complete(model, messages, **params)


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """What `model` would charge for these token counts, from litellm's local price map; None if unknown."""
    litellm = _litellm()
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=input_tokens, completion_tokens=output_tokens)
    except Exception:  # unpriced models (local servers) raise; the price is unknown, not an error
        return None
    return float(prompt_cost) + float(completion_cost)


def make_completer(model: str | None, *, timeout: float = 60.0, retries: int = 3,
                   budget: Budget | None = None) -> Completer:
    """The completer for a litellm model string; a clear error when none is configured."""
    if not model:
        raise SelfImproveError("no model configured",
                               hint="set eval.model in selfimprove.yaml or pass --model")
    if model.startswith("exec:"):
        raise SelfImproveError(f"'{model}' is an exec provider, not a litellm model",
                               hint="exec: providers are only supported by 'selfimprove eval'")
    return LiteLLMCompleter(timeout=timeout, retries=retries, budget=budget)


# -- JSON replies -----------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


def _parse_json(text: str) -> Any:
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    last_error: ValueError | None = None
    for candidate in candidates:
        candidate = candidate.strip()
        try:
            return json.loads(candidate)
        except ValueError as exc:
            last_error = exc
        # prose around a single object: take the outermost braces
        start, end = candidate.find("{"), candidate.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(candidate[start : end + 1])
            except ValueError as exc:
                last_error = exc
    raise ValueError(f"not JSON ({last_error})")


def parse_json(text: str, schema: Mapping[str, Any]) -> Any:
    """A model's JSON reply (```json fences and surrounding prose tolerated), validated against `schema`.

    Raises ValueError with a one-line description of what is wrong.
    """
    value, problem = _check(text, schema)
    if problem is not None:
        raise ValueError(problem)
    return value


def _check(text: str, schema: Mapping[str, Any]) -> tuple[Any, str | None]:
    import jsonschema

    try:
        value = _parse_json(text)
    except ValueError as exc:
        return None, str(exc)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        message = str(first.message)
        if len(message) > PROBLEM_CHARS:
            message = message[:PROBLEM_CHARS] + "…"
        return None, f"{first.json_path}: {message}"
    return value, None


RETRY_ECHO = 2000  # characters of an invalid reply quoted back in the retry: the error says the rest
PROBLEM_CHARS = 300  # a validation message can quote the whole offending value


def _retry_messages(messages: Sequence[Mapping[str, Any]], reply: str,
                    problem: str) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = [dict(m) for m in messages]
    if len(reply) > RETRY_ECHO:
        reply = reply[:RETRY_ECHO] + f"\n[… {len(reply) - RETRY_ECHO} more characters not repeated]"
    return out + [
        {"role": "assistant", "content": reply},
        {"role": "user", "content": f"That reply is not valid: {problem}. Answer again with only the JSON "
                                    "object, matching the schema exactly."},
    ]


class _JsonExchange:
    """One ask → parse → validate → retry-with-the-error exchange; the sync and async drivers below
    differ only in how they call the model."""

    def __init__(self, messages: Sequence[Mapping[str, Any]], schema: Mapping[str, Any]) -> None:
        self.messages = messages
        self.schema = schema
        self.current: list[Mapping[str, Any]] = list(messages)
        self.completions: list[Completion] = []
        self.problem = ""

    def accept(self, completion: Completion) -> tuple[bool, Any]:
        """(True, value) for a valid reply; otherwise remember why and prepare the retry."""
        self.completions.append(completion)
        value, problem = _check(completion.text, self.schema)
        if problem is None:
            return True, value
        self.problem = problem
        self.current = _retry_messages(self.messages, completion.text, problem)
        return False, None

    def failure(self, model: str) -> LLMError:
        return LLMError(f"model reply from {model} is not valid JSON for the expected schema: {self.problem}",
                        hint="try a stronger model")


def complete_json(completer: Completer, model: str, messages: Sequence[Mapping[str, Any]],
                  schema: Mapping[str, Any], *, retries: int = 1,
                  **params: Any) -> tuple[Any, list[Completion]]:
    """Ask, parse JSON (```json fences tolerated), validate; retry with the error; else `LLMError`."""
    params = _structured(completer, model, schema, params)
    exchange = _JsonExchange(messages, schema)
    for _ in range(retries + 1):
        ok, value = exchange.accept(completer.complete(model, exchange.current, **params))
        if ok:
            return value, exchange.completions
    raise exchange.failure(model)


async def acomplete_json(completer: Completer, model: str, messages: Sequence[Mapping[str, Any]],
                         schema: Mapping[str, Any], *, retries: int = 1,
                         **params: Any) -> tuple[Any, list[Completion]]:
    """`complete_json`, async."""
    params = _structured(completer, model, schema, params)
    exchange = _JsonExchange(messages, schema)
    for _ in range(retries + 1):
        ok, value = exchange.accept(await completer.acomplete(model, exchange.current, **params))
        if ok:
            return value, exchange.completions
    raise exchange.failure(model)


def supports_schema(model: str) -> bool:
    """litellm's word on whether `model` takes a JSON Schema as structured output (False if unknown)."""
    try:
        return bool(_litellm().supports_response_schema(model=model))
    except Exception:  # unknown providers raise: no structured output, the schema stays in the text
        return False


def _structured(completer: Completer, model: str, schema: Mapping[str, Any],
                params: dict[str, Any]) -> dict[str, Any]:
    """`params` with the provider's structured output when the model supports it (litellm models only:
    a scripted completer never imports litellm)."""
    if "response_format" in params or not isinstance(completer, LiteLLMCompleter):
        return params
    if not supports_schema(model):
        return params
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "reply"))[:64]
    return {**params, "response_format": {"type": "json_schema",
                                          "json_schema": {"name": name, "schema": dict(schema)}}}


def new_nonce() -> str:
    """A fresh random tag for one request's data delimiters."""
    import secrets

    return secrets.token_hex(6)


def data_block(label: str, text: str, nonce: str) -> str:
    """`text` framed as data: `<data-NONCE label>` … `</data-NONCE>`. Any `<data-` / `</data-` inside the
    text is escaped, so data can neither close its block nor open one that looks like ours."""
    escaped = re.sub(r"<(/?)data-", r"&lt;\1data-", text, flags=re.IGNORECASE)
    return f"<data-{nonce} {label}>\n{escaped}\n</data-{nonce}>"

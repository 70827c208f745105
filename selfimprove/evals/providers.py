"""Providers: who answers a case. Any litellm model string, or `exec:COMMAND` (the user's own harness).

Owns: the provider registry (`make_provider`), the exec protocol of DESIGN §6 — the case as JSON on
stdin (`{"system", "messages", "vars", "configs", "tools"}`), `{"output", "tool_calls"?, "cost"?}` on
stdout — with a timeout, and each provider's cache identity: its name, and `request()`, exactly what it
receives for a case (the cache key hashes that, so two cases differing in anything a provider sees —
vars for a harness, tools, parameters — are never answered from one another's entry).

`configs` maps the repo-relative path of every structured config listed in selfimprove.yaml to its
parsed document at the commit of the side being asked (null when absent there), so a harness can
honour a proposal that changes a config value. `tools` are the agent's tools as OpenAI function
schemas ([] when the suite declares none). A litellm model sees the messages and the call parameters
(tools among them): it gets no vars and no configs (`sees_configs` is False), and its cache keys do
not depend on them.

Must never: import litellm (calls go through `selfimprove.llm`), run an exec command through a shell
(it is split with shlex), or turn a failing harness into a traceback: a command that fails, times out
or prints something that is not the expected JSON is one `SelfImproveError` line.

An exec provider's cache identity includes a hash of the files its command names (e.g. `agent.py` in
`exec:python agent.py`), so editing the harness invalidates its cached answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from selfimprove.errors import SelfImproveError
from selfimprove.evals.assertions import Output
from selfimprove.evals.promptfoo import SECRET_PARAMS
from selfimprove.traces.model import ToolCall

if TYPE_CHECKING:
    from selfimprove.llm import Budget, Completer


class Provider(Protocol):
    name: str  # the cache identity: model string, or exec command plus a hash of its files
    sees_configs: bool  # True when `configs` reach the provider
    charged: bool  # True when its completer already takes every attempt from the run's budget

    def request(self, messages: Sequence[Mapping[str, Any]], vars: Mapping[str, Any],
                params: Mapping[str, Any], configs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Everything this provider receives for a case: what the cache key is made of."""
        ...

    async def call(self, messages: Sequence[Mapping[str, Any]], vars: Mapping[str, Any],
                   params: Mapping[str, Any], configs: Mapping[str, Any] | None = None) -> Output: ...


class LiteLLMProvider:
    """A litellm model string through a `Completer` (retries, timeout and redaction live there).
    A model sees only the messages: `configs` are ignored."""

    sees_configs = False
    charged = True

    def __init__(self, model: str, completer: Completer) -> None:
        self.name = model
        self.model = model
        self.completer = completer

    def request(self, messages: Sequence[Mapping[str, Any]], vars: Mapping[str, Any],
                params: Mapping[str, Any], configs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"messages": list(messages),
                "params": {k: v for k, v in params.items() if k not in SECRET_PARAMS}}

    async def call(self, messages: Sequence[Mapping[str, Any]], vars: Mapping[str, Any],
                   params: Mapping[str, Any], configs: Mapping[str, Any] | None = None) -> Output:
        completion = await self.completer.acomplete(self.model, messages, **params)
        return Output(text=completion.text, tool_calls=completion.tool_calls,
                      input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
                      cost_usd=completion.cost_usd)


class ExecProvider:
    """`exec:COMMAND`: run the user's harness once per case, JSON in, JSON out."""

    sees_configs = True
    charged = False  # a harness run is counted by the runner, one per call

    def __init__(self, command: str, *, cwd: Path, timeout: float = 60.0) -> None:
        self.command = command
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise SelfImproveError(f"cannot parse the exec command {command!r}: {exc}",
                                   hint="quote arguments as in a POSIX shell") from None
        if not self.argv:
            raise SelfImproveError("the exec provider has no command", hint="write it as exec:COMMAND")
        self.cwd = cwd
        self.timeout = timeout
        self.name = f"exec:{command}" + self._fingerprint()

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        found = False
        for token in self.argv:
            path = self.cwd / token
            try:
                if path.is_file():
                    digest.update(token.encode() + b"\0" + path.read_bytes())
                    found = True
            except (OSError, ValueError):
                continue
        return f"#{digest.hexdigest()[:16]}" if found else ""

    def _fail(self, what: str) -> SelfImproveError:
        return SelfImproveError(f"exec provider '{self.command}' {what}",
                                hint="run the command by hand with a case as JSON on stdin "
                                     '({"system", "messages", "vars", "configs", "tools"}); it must print '
                                     '{"output": ...} on stdout')

    def request(self, messages: Sequence[Mapping[str, Any]], vars: Mapping[str, Any],
                params: Mapping[str, Any], configs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        system = ""
        rest = list(messages)
        if rest and rest[0].get("role") == "system":
            system = str(rest.pop(0).get("content") or "")
        return {"system": system, "messages": rest, "vars": dict(vars), "configs": dict(configs or {}),
                "tools": list(params.get("tools") or [])}

    async def call(self, messages: Sequence[Mapping[str, Any]], vars: Mapping[str, Any],
                   params: Mapping[str, Any], configs: Mapping[str, Any] | None = None) -> Output:
        payload = json.dumps(self.request(messages, vars, params, configs),
                             ensure_ascii=False, default=str).encode("utf-8")
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv, cwd=self.cwd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise self._fail(f"could not start: {exc.strerror or exc}") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(payload), self.timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise self._fail(f"timed out after {self.timeout:g}s") from None
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        if process.returncode != 0:
            lines = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
            last = f": {lines[-1].strip()}" if lines else ""
            raise self._fail(f"exited with status {process.returncode}{last}")
        return self._parse(out)

    def _parse(self, out: bytes) -> Output:
        text = out.decode("utf-8", "replace").strip()
        try:
            doc = json.loads(text)
        except ValueError:
            first = text.splitlines()[0][:80] if text else "nothing"
            raise self._fail(f"printed {first!r}, not a JSON object") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("output"), str):
            raise self._fail('printed JSON without a string "output"')
        calls: list[ToolCall] = []
        for raw in doc.get("tool_calls") or []:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise self._fail('printed a tool call without a "name"')
            calls.append(ToolCall(name=raw["name"], arguments=raw.get("arguments"), id=raw.get("id")))
        cost = doc.get("cost", 0.0)
        if not isinstance(cost, (int, float)) or isinstance(cost, bool):
            raise self._fail('printed a "cost" that is not a number')
        return Output(text=doc["output"], tool_calls=tuple(calls), cost_usd=float(cost))


def make_provider(spec: str, *, root: Path, timeout: float = 60.0,
                  completer: Completer | None = None, budget: Budget | None = None) -> Provider:
    """`exec:COMMAND` → ExecProvider (run in the repo root); anything else is a litellm model string."""
    if spec.startswith("exec:"):
        return ExecProvider(spec.removeprefix("exec:").strip(), cwd=root, timeout=timeout)
    from selfimprove.llm import LiteLLMCompleter, with_budget

    if completer is None:
        completer = LiteLLMCompleter(timeout=timeout)
    return LiteLLMProvider(spec, with_budget(completer, budget))

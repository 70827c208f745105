"""A stub OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

It runs `http.server` in a background thread on a free port and answers `POST .../chat/completions`
like the OpenAI API does, so the real litellm path (`openai/<name>` with `api_base`) is exercised
without any network. Behaviour is scripted:

- `reply`: a function of the request body returning the assistant text, or a `Reply` for full control
  (status code, headers, tool calls, a raw body such as malformed JSON);
- `script`: `Reply`s served first, in order, before `reply` is consulted (e.g. a 429 with retry-after);
- `latency`: seconds to wait before answering every request;
- `fail_every` / `fail_status`: every Nth request (counting all requests, from 1) answers that status.

Every request body is recorded in `requests` (parsed JSON), in arrival order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer. `raw` (bytes or str) is sent verbatim instead of a chat-completion body."""

    content: str | None = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None
    raw: bytes | str | None = None
    usage: dict[str, int] | None = None
    no_choices: bool = False


def system_prompt(body: dict[str, Any]) -> str:
    """The system message of a request body ("" when there is none)."""
    for message in body.get("messages", []):
        if message.get("role") == "system":
            content = message.get("content") or ""
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content)
    return ""


def last_user(body: dict[str, Any]) -> str:
    """The last user message of a request body ("" when there is none)."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content") or ""
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content)
    return ""


class StubOpenAI:
    """`with StubOpenAI(reply=...) as stub: ... stub.url` — an OpenAI-compatible server on 127.0.0.1."""

    def __init__(
        self,
        reply: Callable[[dict[str, Any]], str | Reply] | None = None,
        *,
        latency: float = 0.0,
        fail_every: int = 0,
        fail_status: int = 500,
        script: Iterable[Reply] = (),
    ) -> None:
        self.reply = reply or (lambda body: "ok")
        self.latency = latency
        self.fail_every = fail_every
        self.fail_status = fail_status
        self._script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self._count = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> StubOpenAI:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms stalls

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_unparsable": raw.decode("utf-8", "replace")}
                status, headers, payload = stub._answer(self.path, body)
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def do_GET(self) -> None:  # noqa: N802
                payload = json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up mid-answer is expected in timeout tests

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="stub-openai",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StubOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The API base to give litellm (`api_base` or OPENAI_API_BASE)."""
        assert self._server is not None, "the stub is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # -- scripting -------------------------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self._count += 1
            number = self._count
            self.requests.append(body)
            scripted = self._script.pop(0) if self._script else None
        if self.latency:
            time.sleep(self.latency)
        if not path.rstrip("/").endswith("chat/completions"):
            return self._record(404, {}, _error_body("not found", "invalid_request_error"))
        if scripted is None and self.fail_every and number % self.fail_every == 0:
            return self._record(self.fail_status, {}, _error_body("scripted failure", "server_error"))
        reply = scripted if scripted is not None else self.reply(body)
        if isinstance(reply, str):
            reply = Reply(content=reply)
        if reply.raw is not None:
            raw = reply.raw.encode() if isinstance(reply.raw, str) else reply.raw
            return self._record(reply.status, dict(reply.headers), raw)
        if reply.status != 200:
            payload = _error_body(f"status {reply.status}", "error")
            return self._record(reply.status, dict(reply.headers), payload)
        return self._record(200, dict(reply.headers), _completion_body(body, reply, number))

    def _record(self, status: int, headers: dict[str, str],
                payload: bytes) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.statuses.append(status)
        return status, headers, payload


def _error_body(message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


def _completion_body(request: dict[str, Any], reply: Reply, number: int) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.get("id", f"call_{number}_{i}"),
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call["arguments"] if isinstance(call.get("arguments"), str)
                    else json.dumps(call.get("arguments", {})),
                },
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    prompt_chars = sum(len(str(m.get("content") or "")) for m in request.get("messages", []))
    usage = reply.usage or {
        "prompt_tokens": max(1, prompt_chars // 4),
        "completion_tokens": max(1, len(reply.content or "") // 4),
    }
    usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
    doc = {
        "id": f"chatcmpl-stub-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "stub"),
        "choices": [] if reply.no_choices else [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
        ],
        "usage": usage,
    }
    return json.dumps(doc).encode()


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.stub_openai --latency 0.2`: serve until stdin closes; prints the API base first."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="A stub OpenAI-compatible server on 127.0.0.1.")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--fail-every", type=int, default=0, help="every Nth request answers 500")
    args = parser.parse_args(argv)

    def reply(body: dict[str, Any]) -> str:
        return f"echo: {last_user(body)}"

    with StubOpenAI(reply, latency=args.latency, fail_every=args.fail_every) as stub:
        print(stub.url, flush=True)
        sys.stdin.read()  # the parent closes our stdin to stop us


if __name__ == "__main__":
    main()

"""A real HTTP server on 127.0.0.1 speaking OpenAI's chat-completions API and Anthropic's Messages API, for tests.

It answers deterministically from the prompt (``responder(prompt) -> text``), counts every request, records the most
requests it had in flight at once, and can be told to misbehave for the next requests: ``429`` with a
``Retry-After``, ``500``, a slow answer (longer than the client's timeout), or a body that is not JSON. It runs in a
thread of the test process; the SDKs reach it over a real socket.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def default_responder(prompt: str) -> str:
    return f"<answer>{hashlib.sha256(prompt.encode()).hexdigest()[:8]}</answer>"


@dataclass
class Fault:
    kind: str  # an HTTP status ("429", "500", "400"...), "slow" or "malformed"
    retry_after: str | None = None
    seconds: float = 0.0
    match: str | None = None  # only requests whose prompt contains this


class LLMServer:
    """Start with ``with LLMServer() as server:``; ``server.openai_url`` / ``server.anthropic_url`` are the bases."""

    def __init__(self, responder: Callable[[str], str] = default_responder, delay: float = 0.0):
        self.responder = responder
        self.delay = delay  # seconds every answer takes, so that concurrency can be observed
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def fail_next(self, kind: str, times: int = 1, retry_after: str | None = None, seconds: float = 0.0,
                  match: str | None = None) -> None:
        """Misbehave on the next ``times`` requests (whose prompt contains ``match``, if given)."""
        with self._lock:
            self._faults.extend(Fault(kind, retry_after, seconds, match) for _ in range(times))

    def _take_fault(self, prompt: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match is None or fault.match in prompt:
                    self._faults.remove(fault)
                    return fault
        return None

    def __enter__(self) -> LLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _prompt_of(body: dict) -> str:
    parts = [body.get("system") or ""] if isinstance(body.get("system"), str) else []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(block.get("text", "") for block in content)
        parts.append(str(content))
    return "\n".join(parts)


def _tokens(text: str) -> int:
    return len(re.findall(r"\S+", text))


def _handler_for(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            anthropic = self.path.endswith("/messages")
            with server._lock:
                server.requests.append(body)
                server.paths.append(self.path)
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                self._answer(body, anthropic)
            finally:
                with server._lock:
                    server.in_flight -= 1

        def _answer(self, body: dict, anthropic: bool) -> None:
            prompt = _prompt_of(body)
            fault = server._take_fault(prompt)
            if server.delay:
                time.sleep(server.delay)
            if fault is not None and fault.kind.isdigit():
                status = int(fault.kind)
                kind = {429: "rate_limit_error", 400: "invalid_request_error"}.get(status, "api_error")
                error = {"type": "error", "error": {"type": kind, "message": f"injected {status}"}}
                if not anthropic:
                    error = {"error": {"message": f"injected {status}", "type": kind, "code": None}}
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                self._send(status, json.dumps(error).encode(), headers)
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.seconds)
            if fault is not None and fault.kind == "malformed":
                self._send(200, b'{"id": "x", "choices": [ this is not json')
                return
            try:
                text = server.responder(prompt)
            except Exception as error:  # a broken responder is a server error, as a real server's bug would be
                self._send(500, json.dumps({"error": {"message": f"responder failed: {error!r}"}}).encode())
                return
            usage_in, usage_out = _tokens(prompt), _tokens(text)
            if anthropic:
                document = {
                    "id": "msg_test", "type": "message", "role": "assistant", "model": body.get("model"),
                    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
                }
            else:
                document = {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": usage_in, "completion_tokens": usage_out,
                              "total_tokens": usage_in + usage_out},
                }
            self._send(200, json.dumps(document).encode())

    return Handler

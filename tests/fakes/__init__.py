"""Local stand-ins for the LLM providers' HTTP APIs, so the real SDK clients can be tested without the internet.

Each FakeLLMServer listens on 127.0.0.1 on a free port, speaks one wire protocol (OpenAI chat completions, Gemini
generateContent, Anthropic messages), plays a script of replies in order (the last one repeats) and records every
request it received, so a test can check both what the tool did with an answer and what it sent out. An OpenAI
fake can also refuse response formats the way llama-cpp-python's server does (LLAMA_CPP_FORMATS).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROTOCOLS = ("openai", "gemini", "anthropic")
# llama-cpp-python 0.3.36's server: response_format type "text" or "json_object" (with an optional "schema" it
# enforces by grammar); anything else fails its pydantic model, and its error handler answers HTTP 500.
LLAMA_CPP_FORMATS = ("text", "json_object")

# Each provider's error envelope: (status name used by Gemini, error type used by Anthropic and OpenAI).
_ERROR_NAMES = {
    400: ("INVALID_ARGUMENT", "invalid_request_error"),
    401: ("UNAUTHENTICATED", "authentication_error"),
    403: ("PERMISSION_DENIED", "permission_error"),
    404: ("NOT_FOUND", "not_found_error"),
    429: ("RESOURCE_EXHAUSTED", "rate_limit_error"),
    500: ("INTERNAL", "api_error"),
    503: ("UNAVAILABLE", "overloaded_error"),
}


@dataclass
class Reply:
    """One scripted reply: an answer (a JSON-able object, or raw text such as malformed JSON), or an HTTP error.

    delay holds the reply back that many seconds (a hang past the client's timeout). wire, when set, is the whole
    HTTP body as sent (an HTML page, a JSON list, a completion of the wrong shape), with content_type.
    """

    answer: Any = None
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    wire: str | None = None
    content_type: str = "application/json"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    def text(self) -> str:
        """Everything the client sent in the body, as one string (to search the prompt for leaks)."""
        return json.dumps(self.body, ensure_ascii=False)


class FakeLLMServer:
    """A scripted provider endpoint; use as a context manager, point the SDK at base_url."""

    def __init__(self, protocol: str, script: list[Reply], response_formats: tuple[str, ...] | None = None) -> None:
        """response_formats: the OpenAI response_format types accepted (None: any); a request with another one is
        answered like llama-cpp-python does, without using up a scripted reply, and recorded in refused."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol}")
        self.protocol = protocol
        self.script = list(script)
        self.response_formats = response_formats
        self.requests: list[Request] = []
        self.refused: list[Request] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What to pass as --base-url / *_BASE_URL: OpenAI clients expect the /v1 prefix in it, the others do not."""
        root = f"http://127.0.0.1:{self.port}"
        return f"{root}/v1" if self.protocol == "openai" else root

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def prompts(self) -> list[str]:
        """The text of each request's system part and turns, in order, as the model would read it."""
        return ["\n".join(_texts(self.protocol, request.body)) for request in self.requests]

    def _next_reply(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            index = min(len(self.requests), len(self.script)) - 1
            return self.script[index]

    def _refusal(self, request: Request) -> Reply | None:
        """llama-cpp-python's HTTP 500 for a response_format type it does not know, or None."""
        body = request.body if isinstance(request.body, dict) else {}
        wanted = (body.get("response_format") or {}).get("type", "text")
        if self.response_formats is None or wanted in self.response_formats:
            return None
        with self._lock:
            self.refused.append(request)
        error = [{"type": "literal_error", "loc": ["body", "response_format", "type"],
                  "msg": "Input should be 'text' or 'json_object'", "input": wanted}]
        message = json.dumps(error)
        return Reply(status=500, wire=json.dumps({"error": {"message": message, "type": "internal_server_error",
                                                           "param": None, "code": None}}))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    body = raw.decode("utf-8", "replace")
                request = Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                refusal = fake._refusal(request)
                reply = refusal or fake._next_reply(request)
                if reply.delay and fake._closing.wait(reply.delay):
                    return
                status, payload = fake._render(reply, request)
                data = reply.wire.encode() if reply.wire is not None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout) before the reply

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _render(self, reply: Reply, request: Request) -> tuple[int, dict[str, Any]]:
        if reply.status != 200:
            return reply.status, self._error(reply.status)
        text = reply.answer if isinstance(reply.answer, str) else json.dumps(reply.answer)
        body = request.body if isinstance(request.body, dict) else {}
        if self.protocol == "openai":
            return 200, _openai_completion(body.get("model", "fake"), text)
        if self.protocol == "gemini":
            return 200, _gemini_response(request.path, text)
        return 200, _anthropic_message(body, reply.answer, text)

    def _error(self, status: int) -> dict[str, Any]:
        gemini_status, error_type = _ERROR_NAMES.get(status, ("UNKNOWN", "api_error"))
        message = f"scripted HTTP {status}"
        if self.protocol == "gemini":
            return {"error": {"code": status, "message": message, "status": gemini_status}}
        if self.protocol == "anthropic":
            return {"type": "error", "error": {"type": error_type, "message": message}}
        return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


def _openai_completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _gemini_response(path: str, text: str) -> dict[str, Any]:
    model = path.split("/models/")[-1].split(":")[0]
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
        "modelVersion": model,
    }


def _anthropic_message(body: dict[str, Any], answer: Any, text: str) -> dict[str, Any]:
    """A tool_use block when the scripted answer is an object (what tool use returns), else a text block."""
    tool = (body.get("tool_choice") or {}).get("name", "answer")
    if isinstance(answer, dict):
        content = [{"type": "tool_use", "id": "toolu_fake", "name": tool, "input": answer}]
        stop_reason = "tool_use"
    else:
        content = [{"type": "text", "text": text}]
        stop_reason = "end_turn"
    return {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model", "fake"),
        "content": content, "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


def _texts(protocol: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return [str(body)]
    if protocol == "openai":
        return [message["content"] for message in body.get("messages", [])]
    if protocol == "anthropic":
        system = body.get("system", "")
        return [system if isinstance(system, str) else json.dumps(system)] + [
            m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]) for m in body.get("messages", [])
        ]
    parts = [body.get("systemInstruction", {}), *body.get("contents", [])]
    return [part.get("text", "") for content in parts for part in content.get("parts", [])]

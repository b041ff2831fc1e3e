"""Real HTTP servers for the engine tests: a scripted OpenAI-compatible one and ``transformers serve``.

``FakeOpenAIServer`` is a stdlib ``ThreadingHTTPServer`` whose replies a test scripts with a handler
``(path, body) -> Reply``; it records every request. ``TransformersServe`` runs the real
``transformers serve`` on a local model directory in a subprocess, offline on one CPU thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    """What the fake server answers: a status, a JSON body and extra headers."""

    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Handler = Callable[[str, dict[str, Any]], Reply]


class FakeOpenAIServer:
    """A scripted OpenAI-compatible server on a free loopback port, serving from a thread."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler: Handler = handler or (lambda path, body: Reply(body=completion_body(["ok"])))
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        """The API root (``.../v1``)."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        """The JSON bodies received (on ``path`` only, e.g. ``/v1/completions``)."""
        return [b for p, b in self.requests if path is None or p == path]

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _serve(self, path: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append((path, body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.handler(path, body)
            time.sleep(reply.delay)
            return reply
        finally:
            with self._lock:
                self.in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                reply = server._serve(self.path, body)
                data = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return _Handler


def completion_body(
    texts: Sequence[str],
    *,
    finish_reason: str = "length",
    prompt_tokens: int = 3,
    completion_tokens: int | None = None,
    cached_tokens: int | None = None,
    chat: bool = False,
    choice_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An OpenAI (chat) completion response with one choice per text."""
    choices = []
    for i, text in enumerate(texts):
        choice: dict[str, Any] = {"index": i, "finish_reason": finish_reason, "logprobs": None}
        choice |= {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
        choices.append(choice | (choice_extra or {}))
    generated = sum(len(t) for t in texts) if completion_tokens is None else completion_tokens
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
    }
    if cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return {
        "id": "cmpl-test",
        "object": "chat.completion" if chat else "text_completion",
        "created": 0,
        "model": "fake",
        "choices": choices,
        "usage": usage,
    }


def free_port() -> int:
    """A currently free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TransformersServe:
    """``transformers serve DIR --device cpu`` in a subprocess, offline, on one CPU thread."""

    def __init__(self, model_dir: str | Path, *, startup_timeout: float = 90.0) -> None:
        self.model = str(model_dir)
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self._log = tempfile.NamedTemporaryFile("w+", suffix=".log", prefix="transformers-serve-")  # noqa: SIM115
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The API root (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> TransformersServe:
        env = os.environ | {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model, "--device", "cpu"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        self._proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_healthy()
        return self

    def log(self) -> str:
        """What the server printed so far."""
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self._proc.returncode}:\n{self.log()[-3000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.2)
        log = self.log()
        self.stop()
        raise RuntimeError(f"transformers serve not healthy after {self.startup_timeout} s:\n{log[-3000:]}")

"""``archon serve``: a real server process, the official ``openai`` client, every error path, a bounded load test."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from openai import OpenAI
from transformers import AutoTokenizer

from archon import models

KEY = "test-key"
SPEC = """
engines:
  policy: {kind: transformers, model: tiny-l}
budget: {hardware: h100}
pipeline:
  - id: answer
    op: self_consistency
    params: {engine: policy, n: 4, temperature: 1.0, max_tokens: 160}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cmd() -> list[str]:
    exe = shutil.which("archon", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "archon"]


class Served:
    """A running ``archon serve`` process."""

    def __init__(self, spec: Path, *flags: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [*_cmd(), "serve", str(spec), "--port", str(self.port), *flags]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("the server did not come up")

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "sc.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def server(spec_file: Path) -> Iterator[Served]:
    s = Served(spec_file, "--api-key", KEY, "--allow", "answer.n", "--max-body", "16384", "--max-concurrency", "64")
    yield s
    err = s.stop()
    assert "Traceback" not in err, err


def client(s: Served, key: str = KEY) -> OpenAI:
    return OpenAI(base_url=f"{s.url}/v1", api_key=key, max_retries=0)


QUESTION = "Evaluate left to right: 5 + 8 - 8"
TOKENIZER = AutoTokenizer.from_pretrained(models.path("tiny-l"))


def test_the_openai_client_gets_an_answer_with_its_compute(server: Served) -> None:
    resp = client(server).chat.completions.create(model="sc", messages=[{"role": "user", "content": QUESTION}])
    text = resp.choices[0].message.content
    assert resp.object == "chat.completion" and resp.model == "sc" and text and "####" in text
    usage = resp.usage.model_dump()  # type: ignore[union-attr]
    chat = TOKENIZER.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True)
    assert usage["prompt_tokens"] == len(chat["input_ids"])
    assert usage["completion_tokens"] == len(TOKENIZER(text, add_special_tokens=False).input_ids)
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["flops"] > 0 and usage["latency"] > 0 and usage["model_calls"] >= 1
    assert usage["generated_tokens"] >= usage["completion_tokens"]  # 4 samples were drawn to vote
    again = client(server).chat.completions.create(model="sc", messages=[{"role": "user", "content": QUESTION}])
    assert again.choices[0].message.content == text  # a request is seeded by its content
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["sc"]
    done = client(server).completions.create(model="sc", prompt=QUESTION)
    assert done.object == "text_completion" and done.choices[0].text == text


def test_streaming_sends_the_answer_in_openai_chunks(server: Served) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    whole = client(server).chat.completions.create(model="sc", messages=messages).choices[0].message.content
    chunks = list(client(server).chat.completions.create(model="sc", messages=messages, stream=True,
                                                         stream_options={"include_usage": True}))  # fmt: skip
    assert len(chunks) >= 3 and all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.model_dump()["flops"] > 0
    raw = httpx.post(f"{server.url}/v1/completions", json={"prompt": QUESTION, "stream": True},
                     headers={"Authorization": f"Bearer {KEY}"}, timeout=60)  # fmt: skip
    assert raw.headers["content-type"].startswith("text/event-stream") and raw.text.endswith("data: [DONE]\n\n")


def test_a_request_budget_lowers_the_limits_and_allowed_params_override_the_technique(server: Served) -> None:
    c = client(server)
    messages = [{"role": "user", "content": QUESTION}]
    base = c.chat.completions.create(model="sc", messages=messages).usage.model_dump()  # type: ignore[union-attr]
    more = c.chat.completions.create(model="sc", messages=messages, extra_body={"archon": {"params": {"answer.n": 8}}})
    assert more.usage.model_dump()["generated_tokens"] > base["generated_tokens"]  # type: ignore[union-attr]
    for scale in (1, 2, 4, 8, 16):  # the smallest budget (in steps of 2) that lets one worst-case sample run
        limit = base["flops"] * scale
        r = post(server, "/v1/chat/completions", {"messages": messages, "archon": {"budget": {"flops": limit}}})
        if r.status_code == 200:
            break
        assert r.status_code == 400 and r.json()["error"]["code"] == "budget_exhausted"
    assert r.status_code == 200, r.text
    capped = r.json()
    assert capped["usage"]["flops"] <= limit and capped["choices"][0]["message"]["content"]
    assert capped["usage"]["generated_tokens"] < base["generated_tokens"]  # fewer samples fit: still an answer


def post(s: Served, path: str, body: bytes | dict, key: str | None = KEY) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{s.url}{path}", content=data, headers=headers, timeout=60)


@pytest.mark.parametrize(
    ("body", "key", "status", "says"),
    [
        (b"{not json", KEY, 400, "not valid JSON"),
        (b"[1, 2]", KEY, 400, "must be a JSON object"),
        ({"messages": "hi"}, KEY, 400, "messages"),
        ({"messages": []}, KEY, 400, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, KEY, 400, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 3}, KEY, 400, "n"),
        ({"messages": [{"role": "user", "content": "x"}]}, "wrong", 401, "not this server's"),
        ({"messages": [{"role": "user", "content": "x"}]}, None, 401, "no API key"),
        ({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}, KEY, 404, "serves 'sc'"),
        ({"messages": [{"role": "user", "content": "x" * 17000}]}, KEY, 413, "at most 16384"),
        ({"messages": [{"role": "user", "content": QUESTION}], "archon": {"budget": {"flops": 1}}}, KEY, 400,
         "budget allowed no answer"),
        ({"messages": [{"role": "user", "content": QUESTION}], "archon": {"budget": {"joules": 1}}}, KEY, 400,
         "not a limit"),
        ({"messages": [{"role": "user", "content": QUESTION}], "archon": {"params": {"answer.temperature": 0}}},
         KEY, 400, "allowed: answer.n"),
        ({"messages": [{"role": "user", "content": QUESTION}], "archon": {"params": {"answer.n": 0}}}, KEY, 400,
         "archon.params"),
        ({"messages": [{"role": "user", "content": "Evaluate left to right: " + "1 + " * 1500 + "1"}]}, KEY, 400,
         "context"),
    ],
)  # fmt: skip
def test_bad_requests_get_openai_style_errors_never_a_500(
    server: Served, body: bytes | dict, key: str | None, status: int, says: str
) -> None:
    r = post(server, "/v1/chat/completions", body, key)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert says in err["message"] and err["type"]


def test_unknown_paths_and_methods_are_json_errors(server: Served) -> None:
    r = httpx.get(f"{server.url}/v1/nothing", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 405 and "error" in r.json()


def test_a_bounded_load_is_batched_with_no_5xx(server: Served) -> None:
    before = httpx.get(f"{server.url}/health").json()["engines"]["policy"]
    questions = [f"Evaluate left to right: {a} + {b} * 2" for a in range(1, 11) for b in range(1, 21)]  # 200

    def ask(q: str) -> int:
        return post(server, "/v1/chat/completions", {"messages": [{"role": "user", "content": q}]}).status_code

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        codes = list(pool.map(ask, questions))
    assert codes.count(200) == len(questions) and not [c for c in codes if c >= 500]
    after = httpx.get(f"{server.url}/health").json()["engines"]["policy"]
    items, batches = after["items"] - before["items"], after["batches"] - before["batches"]
    assert items / batches > 4 and after["largest"] >= 16  # concurrent requests shared the engine's batches


def test_a_full_queue_answers_429_with_retry_after(spec_file: Path) -> None:
    s = Served(spec_file, "--max-concurrency", "1", "--max-queue", "0")
    try:
        body = {"messages": [{"role": "user", "content": QUESTION}], "archon": {}}

        def ask(i: int) -> httpx.Response:
            payload = {**body, "messages": [{"role": "user", "content": f"Evaluate left to right: {i} + 7 * 3 - 2"}]}
            return post(s, "/v1/chat/completions", payload, key=None)

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(ask, range(6)))
        codes = [r.status_code for r in responses]
        assert 200 in codes and 429 in codes and not [c for c in codes if c >= 500]
        busy = next(r for r in responses if r.status_code == 429)
        assert busy.headers["retry-after"] == "1" and busy.json()["error"]["code"] == "queue_full"
    finally:
        s.stop()


def test_listening_beyond_loopback_needs_a_key(spec_file: Path) -> None:
    out = subprocess.run([*_cmd(), "serve", str(spec_file), "--host", "0.0.0.0"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and "--api-key" in out.stderr

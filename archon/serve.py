"""``archon serve``: a pipeline behind an OpenAI-compatible API.

``POST /v1/chat/completions`` and ``POST /v1/completions`` run the spec's pipeline on the request's
messages (a completion's ``prompt`` is one user turn) and answer with its final candidate;
``GET /v1/models`` names the pipeline; ``GET /health`` says it is up and how busy it is, with each
engine's batching counters. Concurrent requests are problems of one runtime: their model calls batch
in the engines exactly like the problems of ``archon run``.

The response's ``usage`` has ``prompt_tokens`` (the request's prompt, as the first engine tokenizes
it), ``completion_tokens`` (the answer's) and ``total_tokens``, as OpenAI defines them, plus what the
pipeline computed for it: ``flops``, ``latency`` (idealized, on the spec's hardware), ``dollars``,
``processed_prompt_tokens``, ``generated_tokens`` and ``model_calls``.

A request may carry, in an ``archon`` object (the ``openai`` client's ``extra_body``):

- ``budget``: limits for this request (``flops``, ``tokens``, ``calls``, ``latency``, ``dollars``,
  ``seconds``) on top of the spec's per-problem budget: they lower the server's limits, never raise
  them;
- ``params``: values for node parameters the server allows (``--allow NODE.PARAM``), validated like
  the spec's (``{"answer.n": 8}``).

A request is seeded by its messages (and its ``seed`` field): the same request gets the same answer.
``stream: true`` sends the final answer as server-sent events in OpenAI's chunk format (the pipeline
runs to its end first: a vote or a search has no answer before then). Errors are OpenAI-style JSON
(``{"error": {"message", "type", "param", "code"}}``): 400 for malformed JSON or fields, 401 for a
wrong or missing key, 404 for another model's name, 413 for an oversized body, 429 with
``Retry-After`` when the queue is full; a client's input never causes a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from archon.core import ArchonError, Problem
from archon.runtime import Runner
from archon.spec.load import SpecError
from archon.spec.models import Spec
from budgets import LIMITS, BudgetError, Limits

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_RUNNERS = 16
"""Distinct parameter overrides kept ready (least recently used dropped)."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "developer"]
    content: str


class _Archon(BaseModel):
    model_config = ConfigDict(extra="forbid")
    budget: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send sampling fields the pipeline decides itself
    model: str | None = None
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="one answer per request")
    archon: _Archon = Field(default_factory=_Archon)
    stream_options: dict[str, Any] | None = None
    seed: int | None = None


class ChatRequest(_Common):
    """The fields of ``/v1/chat/completions`` the server reads (others are accepted and ignored)."""

    messages: list[_Message] = Field(min_length=1)


class CompletionRequest(_Common):
    """The fields of ``/v1/completions`` the server reads (others are accepted and ignored)."""

    prompt: str


class ApiError(Exception):
    """An OpenAI-style error response."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Server:
    """The state of one served pipeline: its runtime, its overrides, its queue."""

    spec: Spec
    name: str
    api_key: str | None = None
    max_concurrency: int = 64
    max_queue: int = 256
    max_body_bytes: int = 1 << 20
    allow: Sequence[str] = ()
    seed: int = 0
    runner: Runner | None = None
    runners: OrderedDict[str, Runner] = field(default_factory=OrderedDict)
    running: int = 0
    waiting: int = 0
    served: int = 0
    started: float = field(default_factory=time.time)
    _gate: asyncio.Semaphore | None = None

    async def start(self) -> None:
        """Build the runtime and every engine now (a missing model fails here, not at the first request)."""
        self.runner = Runner(self.spec, seed=self.seed, concurrency=self.max_concurrency)
        self.runner.ledger.keep_calls = False
        self.runner.prepare()
        self._gate = asyncio.Semaphore(self.max_concurrency)
        for name in self.allow:
            self._check_allowed(name)

    async def stop(self) -> None:
        """Close the engines."""
        if self.runner is not None:
            await self.runner.aclose()

    def _check_allowed(self, name: str) -> tuple[int, str]:
        node, _, param = name.partition(".")
        ids = [n.id for n in self.spec.pipeline]
        if node not in ids or not param:
            raise SpecError(f"--allow {name}: not NODE.PARAM of a node of the pipeline (nodes: {', '.join(ids)})")
        return ids.index(node), param

    def runner_for(self, params: Mapping[str, Any]) -> Runner:
        """The runner for a request's parameter overrides (the server's own when there are none)."""
        assert self.runner is not None
        if not params:
            return self.runner
        for name in params:
            if name not in self.allow:
                allowed = ", ".join(self.allow) or "none (start the server with --allow NODE.PARAM)"
                raise ApiError(400, f"archon.params.{name}: not a parameter this server lets requests set; "
                                    f"allowed: {allowed}", param=f"archon.params.{name}")  # fmt: skip
        key = json.dumps(params, sort_keys=True, default=str)
        if key in self.runners:
            self.runners.move_to_end(key)
            return self.runners[key]
        spec = self.spec.model_copy(deep=True)
        for name, value in params.items():
            index, param = self._check_allowed(name)
            spec.pipeline[index].params[param] = value
        try:
            runner = Runner(spec, seed=self.seed, concurrency=self.max_concurrency, resources=self.runner.resources)
        except (ArchonError, ValidationError, ValueError) as exc:
            raise ApiError(400, f"archon.params: {_one_line(exc)}", param="archon.params") from None
        runner.ledger.keep_calls = False
        self.runners[key] = runner
        while len(self.runners) > MAX_RUNNERS:
            self.runners.popitem(last=False)
        return runner

    async def answer(
        self, messages: list[dict[str, str]], extra: _Archon, seed: int | None = None
    ) -> tuple[dict[str, Any], Runner]:
        """Run the pipeline on one request: its record (the queue and the budget applied).

        A request is seeded by its messages and ``seed``: the same request gets the same answer.
        """
        if self.running + self.waiting >= self.max_concurrency + self.max_queue:
            raise ApiError(429, f"the server is busy: {self.running} requests running and {self.waiting} queued; "
                                "retry later", kind="rate_limit_error", code="queue_full",
                           headers={"Retry-After": "1"})  # fmt: skip
        limits = _limits(extra.budget)
        runner = self.runner_for(extra.params)
        key = hashlib.sha256(json.dumps([messages, seed], sort_keys=True).encode()).hexdigest()[:32]
        problem = Problem(id=f"req-{uuid.uuid4().hex}", question=messages, metadata={"seed_key": key})
        assert self._gate is not None
        self.waiting += 1
        try:
            await self._gate.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            if limits is not None:
                runner.ledger.limit_problem(problem.id, limits)
            record = await runner.run_problem(problem)
        finally:
            self.running -= 1
            self._gate.release()
            runner.ledger.forget(problem.id)
        self.served += 1
        return record, runner

    def engine_stats(self) -> dict[str, Any]:
        """Each built engine's batching counters (calls batched together: items per batch)."""
        assert self.runner is not None
        out: dict[str, Any] = {}
        for name in self.spec.engines:
            engine = self.runner.pool.get(name)
            stats = getattr(engine, "batch_stats", None)
            if stats is not None:
                out[name] = {"batches": stats.batches, "items": stats.items, "largest": stats.largest,
                             "items_per_batch": stats.items / stats.batches if stats.batches else 0.0}  # fmt: skip
        return out


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
    return " ".join(str(exc).split())


def _limits(budget: Mapping[str, float]) -> Limits | None:
    if not budget:
        return None
    unknown = sorted(set(budget) - set(LIMITS))
    if unknown:
        raise ApiError(400, f"archon.budget.{unknown[0]}: not a limit; limits: {', '.join(LIMITS)}",
                       param=f"archon.budget.{unknown[0]}")  # fmt: skip
    try:
        return Limits(**{k: (int(v) if k in ("tokens", "calls") else float(v)) for k, v in budget.items()})
    except (BudgetError, TypeError, ValueError) as exc:
        raise ApiError(400, f"archon.budget: {exc}", param="archon.budget") from None


def _count(runner: Runner, text: str | list[dict[str, str]]) -> int:
    """Tokens of a prompt or an answer as the pipeline's first engine counts them (characters without a tokenizer)."""
    name = next(iter(runner.spec.engines))
    engine = runner.pool.get(name)
    try:
        ids = engine.encode(text) if isinstance(text, list) else engine.encode([{"role": "assistant", "content": text}])
    except Exception:  # an engine that cannot tokenize this
        ids = None
    if ids is None:
        return len(text) if isinstance(text, str) else sum(len(m["content"]) for m in text)
    if isinstance(text, str):  # the answer alone: its tokens without the chat template around it
        tok = getattr(engine, "tokenizer", None)
        if tok is not None:
            return len(tok(text, add_special_tokens=False).input_ids)
    return len(ids)


def _usage(runner: Runner, messages: list[dict[str, str]], answer: str, record: dict[str, Any]) -> dict[str, Any]:
    cost = record["cost"]
    prompt, completion = _count(runner, messages), _count(runner, answer)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "flops": cost.get("flops", 0.0),
        "latency": cost.get("latency", 0.0),
        "dollars": cost.get("dollars", 0.0),
        "processed_prompt_tokens": int(cost.get("prompt_tokens", 0)),
        "generated_tokens": int(cost.get("generated_tokens", 0)),
        "model_calls": int(cost.get("calls", 0)),
    }


def _answer_text(record: dict[str, Any]) -> str:
    if record["candidates"]:
        return str(record["candidates"][0]["text"])
    if record.get("refusals"):
        raise ApiError(400, f"the request's budget allowed no answer: {record.get('first_refusal')}",
                       param="archon.budget", code="budget_exhausted")  # fmt: skip
    if record.get("error"):
        raise ApiError(400, f"the pipeline could not answer this request: {record['error']}", code="pipeline_error")
    return ""


def create_app(server: Server) -> FastAPI:
    """The FastAPI application serving ``server``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(title=f"archon serve: {server.name}", lifespan=lifespan, docs_url=None, redoc_url=None)

    def error(exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error(ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind=kind))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(ApiError(400, str(exc)))

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/v1/"):
            if server.api_key is not None:
                given = request.headers.get("authorization", "")
                if given != f"Bearer {server.api_key}":
                    what = "no API key given" if not given else "the API key is not this server's"
                    return error(ApiError(401, f"{what} (send Authorization: Bearer KEY)",
                                          kind="authentication_error", code="invalid_api_key"))  # fmt: skip
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > server.max_body_bytes:
                return error(ApiError(413, f"the request body is {int(length)} bytes; this server takes at most "
                                           f"{server.max_body_bytes}", code="body_too_large"))  # fmt: skip
        return await call_next(request)

    async def parse(request: Request, model: type[BaseModel]) -> Any:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > server.max_body_bytes:
                raise ApiError(413, f"the request body is over {server.max_body_bytes} bytes", code="body_too_large")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc})", code="invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
        try:
            req = model.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ApiError(400, f"{where}: {err['msg']}", param=where or None) from None
        if req.model is not None and req.model != server.name:
            raise ApiError(404, f"model {req.model!r}: this server serves {server.name!r}", kind="not_found_error",
                           param="model", code="model_not_found")  # fmt: skip
        return req

    async def run(messages: list[dict[str, str]], req: _Common) -> tuple[dict[str, Any], str, dict[str, Any]]:
        try:
            record, runner = await server.answer(messages, req.archon, req.seed)
        except (ArchonError, BudgetError) as exc:  # the request's input (a prompt past the context, ...)
            raise ApiError(400, str(exc)) from None
        text = _answer_text(record)
        return record, text, _usage(runner, messages, text, record)

    async def respond(messages: list[dict[str, str]], req: _Common, *, chat: bool) -> Any:
        """Run the request, then answer it whole or as a stream (chat or text completion)."""
        ident, created = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", int(time.time())
        record, text, usage = await run(messages, req)
        if req.stream:
            return StreamingResponse(_stream(ident, created, server.name, text, usage, req, chat=chat),
                                     media_type="text/event-stream")  # fmt: skip
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop"}
        extras = {"answer": record["answer"], "cost_by_node": record["cost_by_node"], "error": record["error"],
                  "candidates": len(record["candidates"])}  # fmt: skip
        return {
            "id": ident, "object": "chat.completion" if chat else "text_completion", "created": created,
            "model": server.name, "choices": [{**choice, "logprobs": None}], "usage": usage, "archon": extras,
        }  # fmt: skip

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        req = await parse(request, ChatRequest)
        return await respond([m.model_dump() for m in req.messages], req, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        req = await parse(request, CompletionRequest)
        return await respond([{"role": "user", "content": req.prompt}], req, chat=False)

    @app.get("/v1/models")
    async def models() -> Any:
        return {
            "object": "list",
            "data": [{"id": server.name, "object": "model", "created": int(server.started), "owned_by": "archon"}],
        }

    @app.get("/health")
    async def health() -> Any:
        return {"status": "ok", "model": server.name, "running": server.running, "queued": server.waiting,
                "served": server.served, "engines": server.engine_stats()}  # fmt: skip

    return app


async def _stream(ident: str, created: int, model: str, text: str, usage: dict[str, Any], req: _Common, *,
                  chat: bool) -> AsyncIterator[bytes]:  # fmt: skip
    """The answer as OpenAI's server-sent chunks (a few characters each), then ``[DONE]``."""
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choice: dict[str, Any], **more: Any) -> bytes:
        payload = {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice], **more}
        return f"data: {json.dumps(payload)}\n\n".encode()

    pieces = [text[i : i + 16] for i in range(0, len(text), 16)] or [""]
    if chat:
        yield event({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
    for piece in pieces:
        delta = {"delta": {"content": piece}} if chat else {"text": piece}
        yield event({"index": 0, **delta, "finish_reason": None})
        await asyncio.sleep(0)
    last = {"delta": {}} if chat else {"text": ""}
    yield event({"index": 0, **last, "finish_reason": "stop"})
    if req.stream_options and req.stream_options.get("include_usage"):
        payload = {"id": ident, "object": kind, "created": created, "model": model, "choices": [], "usage": usage}
        yield f"data: {json.dumps(payload)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def check_host(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond loopback without an API key."""
    if host not in LOOPBACK and not api_key:
        raise SpecError(
            f"--host {host}: listening beyond this machine needs --api-key KEY (or serve on 127.0.0.1 behind a proxy)"
        )

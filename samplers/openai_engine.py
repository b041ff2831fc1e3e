"""An engine for any OpenAI-compatible HTTP server: vLLM, SGLang, ``transformers serve``, the OpenAI API.

Text and token-id prompts go to ``/v1/completions``, chat messages to ``/v1/chat/completions``, through
the official ``openai`` SDK. Calls run concurrently (bounded by a semaphore), so the micro-batching of
the runtime becomes concurrent HTTP requests that the server batches on its side.

Servers differ in what they support; the engine adapts where it can and says so where it cannot:

- ``n``: sent as asked; when a server returns fewer choices (``transformers serve`` ignores ``n``), the
  missing ones are drawn by concurrent single requests, and the engine remembers not to send ``n`` again.
- stop strings: applied on the client in every case (earliest match, ``include_stop``), and also sent to
  the server when ``server_stop`` is true, which saves the server generating past them.
- logprobs, entropies, prompt scoring: an :class:`~archon.core.UnsupportedFeatureError` naming the server
  and the field when the server does not return what is needed, never a silent ``None``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from archon.core.errors import ModelNotFoundError
from archon.core.generation import (
    Completion,
    EngineBase,
    EngineError,
    FinishReason,
    GenRequest,
    GenResult,
    Prompt,
    ScoreResult,
    UnsupportedFeatureError,
    Usage,
    prompt_kind,
)
from archon.core.models import embedded_names, resolve_model
from budgets import ModelFacts
from samplers.stops import find_stop

Endpoint = Literal["completions", "chat"]
RETRY_STATUS = frozenset({408, 409, 429})
"""HTTP statuses retried besides every 5xx (as the OpenAI SDK does)."""


@dataclass
class _Link:
    """The SDK client and the semaphore of one event loop (neither may cross loops)."""

    loop: asyncio.AbstractEventLoop
    client: Any
    semaphore: asyncio.Semaphore


class OpenAIEngine(EngineBase):
    """Generation and scoring on an OpenAI-compatible server.

    Args:
        model: The model name the server expects in requests (for ``transformers serve DIR``: ``DIR``).
        base_url: The server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key: The API key; default: ``$OPENAI_API_KEY``, else ``"EMPTY"`` (local servers take any).
        name: The engine's name in results and reports (default: ``model``).
        concurrency: Most HTTP requests in flight at once.
        timeout: Seconds one HTTP request may take before it is retried.
        max_retries: Retries of a request that failed with 408, 409, 429, a 5xx status, a connection
            error or a timeout, after exponential backoff with jitter (a ``Retry-After`` header wins).
            Other errors fail at once.
        backoff: Delay before the first retry in seconds; it doubles for each retry.
        max_backoff: Longest delay between retries.
        supports_n: Whether the server honours ``n``; ``None`` finds out on the first call with ``n > 1``.
        server_stop: Send stop strings to the server too. Turn off for servers whose stop matching is
            broken (``transformers serve`` on a character-level tokenizer: HTTP 500 for characters not in
            the vocabulary, and a stop such as ``" = "`` that ends the text at its first space).
        return_token_ids: Ask for the generated token ids (vLLM's ``return_token_ids``; other servers may
            reject the unknown field).
        config: The model's Hugging Face config (a dict, a ``config.json`` or a model directory), for
            :attr:`facts`. Default: ``model``'s ``config.json`` when ``model`` is a local directory.
        price_per_mtok_in: Dollars per million prompt tokens computed, for :meth:`dollars`.
        price_per_mtok_cached: Dollars per million cached prompt tokens (default: the input price).
        price_per_mtok_out: Dollars per million generated tokens.

    Example:
        >>> engine = OpenAIEngine("tiny", base_url="http://127.0.0.1:8000/v1",
        ...                       config={"hidden_size": 64, "num_hidden_layers": 2,
        ...                               "num_attention_heads": 2, "vocab_size": 103})
        >>> engine.name, engine.facts.layers
        ('tiny', 2)
        >>> result = asyncio.run(engine.generate(GenRequest("2 + 3 =", n=4)))  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        name: str | None = None,
        concurrency: int = 16,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        supports_n: bool | None = None,
        server_stop: bool = True,
        return_token_ids: bool = False,
        config: Mapping[str, Any] | str | Path | None = None,
        price_per_mtok_in: float = 0.0,
        price_per_mtok_cached: float | None = None,
        price_per_mtok_out: float = 0.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"OpenAIEngine.concurrency: must be at least 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"OpenAIEngine.max_retries: must be >= 0, got {max_retries}")
        self.model = model
        self.name = name or model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.supports_n = supports_n
        self.server_stop = server_stop
        self.return_token_ids = return_token_ids
        self.price_per_mtok_in = price_per_mtok_in
        self.price_per_mtok_cached = price_per_mtok_in if price_per_mtok_cached is None else price_per_mtok_cached
        self.price_per_mtok_out = price_per_mtok_out
        self._facts = _load_facts(config, model, self.name)
        self._link_state: _Link | None = None

    def __repr__(self) -> str:
        return f"OpenAIEngine({self.model!r}, base_url={self.base_url!r})"

    @property
    def facts(self) -> ModelFacts:
        """The model's architecture, from ``config`` (a server does not report it)."""
        if self._facts is None:
            raise UnsupportedFeatureError(
                f"OpenAIEngine {self.name!r}: the model's architecture is unknown; pass config= "
                "(its config.json as a dict, a file or a model directory) for the cost model"
            )
        return self._facts

    def dollars(self, usage: Usage) -> float:
        """What ``usage`` costs at this engine's prices (computed and cached prompt tokens, generated tokens)."""
        return (
            usage.computed_prompt_tokens * self.price_per_mtok_in
            + usage.cached_tokens * self.price_per_mtok_cached
            + usage.generated_tokens * self.price_per_mtok_out
        ) / 1e6

    async def generate(self, request: GenRequest) -> GenResult:
        """Sample ``request.n`` completions of ``request.prompt``.

        ``n`` is sent in one request while the server honours it; otherwise (or for the choices a server
        left out) the completions are drawn by concurrent single requests, the ``i``-th with a seed derived
        from ``request.seed`` and ``i``. ``usage`` sums the ``usage`` of every HTTP response: after a fan-out
        the prompt counts once per request, which is what the server really computed (its own prefix
        cache shows up in ``cached_tokens`` when it reports ``prompt_tokens_details.cached_tokens``).

        ``token_ids`` are filled only when the server returns them (vLLM with ``return_token_ids``), else
        empty. ``logprobs`` are the server's per-token logprobs (as the server defines them: vLLM reports
        the model's distribution before sampling adjustments), cut like the text at a stop string.

        Raises:
            UnsupportedFeatureError: ``request.entropies`` or an entropy exit (an API returns at most the
                top-k logprobs, not the full distribution whose entropy is asked for), or ``request.logprobs``
                from a server that returns none.
            EngineError: The server failed, or refused the request (the status and its message).
        """
        if request.entropies or request.entropy_exits or request.confidences:
            what = "entropies" if request.entropies else "confidences" if request.confidences else "an exit"
            raise UnsupportedFeatureError(
                f"{self.base_url}: GenRequest.{what} needs the full next-token distribution, which an "
                "OpenAI-compatible API does not return (only top-k logprobs); use a local engine"
            )
        start = time.perf_counter()
        endpoint: Endpoint = "chat" if prompt_kind(request.prompt) == "messages" else "completions"
        responses = await self._sample(endpoint, request)
        choices = [c for r in responses for c in sorted(r.get("choices") or [], key=lambda c: c.get("index", 0))]
        completions = tuple(self._completion(endpoint, c, request) for c in choices[: request.n])
        usage = sum((_usage(r) for r in responses), Usage())
        return GenResult(request, completions, usage, self.name, time.perf_counter() - start)

    async def score(self, prompt: Prompt, continuations: Sequence[str]) -> ScoreResult:
        """Log-probabilities of each continuation's tokens after a text ``prompt``, by teacher forcing.

        Each continuation is one ``/v1/completions`` request of ``prompt + continuation`` with
        ``echo=True, logprobs=1, max_tokens=1`` (vLLM's prompt logprobs); the continuation's tokens are
        the last echoed ones whose text covers it (a token that straddles the boundary counts as the
        continuation's). ``token_ids`` are empty unless the server returns ``prompt_token_ids``.

        Raises:
            UnsupportedFeatureError: A chat or token-id prompt, or a server that does not echo prompt
                logprobs (``transformers serve`` and the OpenAI API do not).
        """
        if prompt_kind(prompt) != "text":
            raise UnsupportedFeatureError(
                f"{self.base_url}: OpenAIEngine.score needs a text prompt (apply the chat template first)"
            )
        text = str(prompt)
        scored = await asyncio.gather(*(self._score_one(text, c) for c in continuations))
        usage = sum((u for _, _, u in scored), Usage())
        return ScoreResult(tuple(lp for lp, _, _ in scored), tuple(ids for _, ids, _ in scored), usage, self.name)

    async def aclose(self) -> None:
        """Close the HTTP client (a later call opens a new one)."""
        link, self._link_state = self._link_state, None
        if link is not None and not link.loop.is_closed():
            await link.client.close()

    # ----- sampling -----

    async def _sample(self, endpoint: Endpoint, request: GenRequest) -> list[dict[str, Any]]:
        n = request.n
        if n == 1 or self.supports_n is False:
            return list(await asyncio.gather(*(self._single(endpoint, request, i) for i in range(n))))
        first = await self._post(endpoint, self._body(endpoint, request, n=n, seed=request.seed))
        got = len(first.get("choices") or [])
        if got == 0:
            raise EngineError(f"{self.base_url}: the server returned no choices for a {endpoint} request")
        if self.supports_n is None:
            self.supports_n = got >= n
        rest = await asyncio.gather(*(self._single(endpoint, request, i) for i in range(got, n)))
        return [first, *rest]

    async def _single(self, endpoint: Endpoint, request: GenRequest, i: int) -> dict[str, Any]:
        response = await self._post(endpoint, self._body(endpoint, request, n=1, seed=_derived_seed(request.seed, i)))
        for choice in response.get("choices") or []:
            choice["index"] = i
        return response

    def _body(self, endpoint: Endpoint, request: GenRequest, *, n: int, seed: int | None) -> dict[str, Any]:
        """The SDK keyword arguments of one request."""
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens}
        body["temperature"] = request.temperature
        extra: dict[str, Any] = {}
        if not request.greedy:
            if request.top_p < 1:
                body["top_p"] = request.top_p
            if request.top_k:
                extra["top_k"] = request.top_k
        if n > 1:
            body["n"] = n
        if seed is not None:
            body["seed"] = seed
        if request.stop and self.server_stop:
            body["stop"] = list(request.stop)
        if self.return_token_ids:
            extra["return_token_ids"] = True
        if extra:
            body["extra_body"] = extra
        if endpoint == "chat":
            body["messages"] = [dict(m) for m in request.prompt]  # type: ignore[arg-type]
            if request.logprobs:
                body["logprobs"] = True
        else:
            prompt = request.prompt
            body["prompt"] = prompt if isinstance(prompt, str) else list(prompt)  # type: ignore[arg-type]
            if request.logprobs:
                body["logprobs"] = 1
        return body

    def _completion(self, endpoint: Endpoint, choice: dict[str, Any], request: GenRequest) -> Completion:
        text, tokens, logprobs = _choice_text_and_logprobs(endpoint, choice)
        if request.logprobs and logprobs is None:
            raise UnsupportedFeatureError(
                f"{self.base_url} returned no token logprobs, which GenRequest.logprobs asks for "
                "(transformers serve ignores them; vLLM returns them)"
            )
        return _finish(
            text,
            tokens=tokens,
            token_ids=tuple(choice.get("token_ids") or ()),
            logprobs=logprobs,
            request=request,
            server_reason=choice.get("finish_reason"),
            matched=choice.get("stop_reason", choice.get("matched_stop")),
        )

    # ----- scoring -----

    async def _score_one(self, prompt: str, continuation: str) -> tuple[tuple[float, ...], tuple[int, ...], Usage]:
        body = {
            "model": self.model,
            "prompt": prompt + continuation,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 1,
            "temperature": 0.0,
        }
        response = await self._post("completions", body)
        usage = _usage(response)
        choice = (response.get("choices") or [{}])[0]
        _, tokens, logprobs = _choice_text_and_logprobs("completions", choice)
        generated = usage.generated_tokens if response.get("usage") else 1
        if tokens is None or logprobs is None or len(tokens) <= generated:
            raise UnsupportedFeatureError(
                f"{self.base_url} does not return prompt logprobs (completions with echo=True and logprobs), "
                "which OpenAIEngine.score needs (vLLM does; transformers serve and the OpenAI API do not)"
            )
        echoed, echoed_lp = tokens[: len(tokens) - generated], logprobs[: len(tokens) - generated]
        m = _tokens_covering_tail(echoed, len(continuation))
        prompt_ids = choice.get("prompt_token_ids") or ()
        ids = tuple(prompt_ids[len(prompt_ids) - m :]) if m and len(prompt_ids) == len(echoed) else ()
        return tuple(echoed_lp[len(echoed) - m :]) if m else (), ids, usage

    # ----- HTTP -----

    def _link(self) -> _Link:
        """The client and semaphore of the running event loop (made anew when the loop changed)."""
        loop = asyncio.get_running_loop()
        if self._link_state is None or self._link_state.loop is not loop:
            import openai

            client = openai.AsyncOpenAI(
                api_key=self.api_key, base_url=self.base_url, timeout=self.timeout, max_retries=0
            )
            self._link_state = _Link(loop, client, asyncio.Semaphore(self.concurrency))
        return self._link_state

    async def _post(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        """One request with retries; the response as a dict of what the server sent."""
        import openai

        link = self._link()
        create = link.client.chat.completions.create if endpoint == "chat" else link.client.completions.create
        async with link.semaphore:
            for attempt in range(self.max_retries + 1):
                try:
                    response = await create(**body)
                    return response.to_dict()
                except openai.APIStatusError as e:
                    retry = e.status_code in RETRY_STATUS or e.status_code >= 500
                    if not retry or attempt == self.max_retries:
                        raise self._status_error(endpoint, e, attempt) from None
                    delay = self._delay(attempt, e.response.headers.get("retry-after"))
                except openai.APIConnectionError as e:
                    if attempt == self.max_retries:
                        raise self._connection_error(endpoint, e, attempt) from None
                    delay = self._delay(attempt, None)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before retry ``attempt + 1``: the server's ``Retry-After``, else jittered exponential."""
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.max_backoff)
            except ValueError:
                pass
        return min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    def _status_error(self, endpoint: Endpoint, e: Any, attempt: int) -> EngineError:
        tries = f" after {attempt + 1} attempts" if attempt else ""
        message = _one_line(_server_message(e.body) or e.message)
        return EngineError(f"{self.base_url}/{_path(endpoint)}: HTTP {e.status_code}{tries}: {message}")

    def _connection_error(self, endpoint: Endpoint, e: Exception, attempt: int) -> EngineError:
        cause = f" ({_one_line(str(e.__cause__))})" if e.__cause__ else ""
        what = _one_line(getattr(e, "message", str(e)))
        return EngineError(f"{self.base_url}/{_path(endpoint)}: {what}{cause} after {attempt + 1} attempts")


# ----- pure helpers -----


def _finish(
    text: str,
    *,
    tokens: list[str] | None,
    token_ids: tuple[int, ...],
    logprobs: list[float] | None,
    request: GenRequest,
    server_reason: str | None,
    matched: Any,
) -> Completion:
    """A completion from a server choice: stop strings applied, the finish reason mapped.

    A stop string found in the text cuts it (and its tokens after the one that completed the match):
    ``"stop"``. Otherwise the server's ``"length"`` is ``"length"``, and its ``"stop"`` is a stop string
    when the server names the one it matched (``matched``: vLLM's ``stop_reason``, SGLang's
    ``matched_stop``; the text then lacks it, so ``include_stop`` appends it) and ``"eos"`` otherwise.
    A server that strips a matched stop without naming it (the OpenAI API) thus reads as ``"eos"``.
    """
    hit = find_stop(text, request.stop) if request.stop else None
    if hit is not None:
        i, stop = hit
        keep = _tokens_covering(tokens, i + len(stop))
        if keep is not None:
            logprobs = logprobs[:keep] if logprobs is not None else None
            token_ids = token_ids[:keep] if len(token_ids) == len(tokens or ()) else token_ids
        cut = text[: i + len(stop)] if request.include_stop else text[:i]
        return Completion(cut, token_ids, _tuple(logprobs), None, "stop", stop)
    if server_reason == "stop" and isinstance(matched, str) and matched in request.stop:
        text = text + matched if request.include_stop else text
        return Completion(text, token_ids, _tuple(logprobs), None, "stop", matched)
    reason: FinishReason = "length" if server_reason == "length" else "eos"
    return Completion(text, token_ids, _tuple(logprobs), None, reason)


def _choice_text_and_logprobs(
    endpoint: Endpoint, choice: Mapping[str, Any]
) -> tuple[str, list[str] | None, list[float] | None]:
    """A choice's text, its token strings and their logprobs (``None`` where the server sent none)."""
    lp = choice.get("logprobs") or {}
    if endpoint == "chat":
        text = (choice.get("message") or {}).get("content") or ""
        content = lp.get("content")
        if not content:
            return text, None, None
        return text, [str(t.get("token", "")) for t in content], [_float(t.get("logprob")) for t in content]
    text = choice.get("text") or ""
    values = lp.get("token_logprobs")
    if not values:
        return text, None, None
    tokens = lp.get("tokens")
    strings = [str(t) for t in tokens] if tokens and len(tokens) == len(values) else None
    return text, strings, [_float(v) for v in values]


def _tokens_covering(tokens: Sequence[str] | None, chars: int) -> int | None:
    """How many leading tokens it takes for their text to reach ``chars`` characters."""
    if tokens is None:
        return None
    total = 0
    for k, token in enumerate(tokens, 1):
        total += len(token)
        if total >= chars:
            return k
    return len(tokens)


def _tokens_covering_tail(tokens: Sequence[str], chars: int) -> int:
    """How many trailing tokens it takes for their text to reach ``chars`` characters (0 for none)."""
    if chars <= 0:
        return 0
    total = 0
    for k, token in enumerate(reversed(tokens), 1):
        total += len(token)
        if total >= chars:
            return k
    return len(tokens)


def _usage(response: Mapping[str, Any]) -> Usage:
    """The usage a response reports (zeros when it reports none)."""
    usage = response.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        int(usage.get("prompt_tokens") or 0),
        int(details.get("cached_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
    )


def _derived_seed(seed: int | None, i: int) -> int | None:
    """The seed of the ``i``-th of ``n`` single requests: ``seed`` itself for the first, distinct for the rest."""
    if seed is None or i == 0:
        return seed
    return random.Random(f"{seed}:{i}").randrange(2**31)


def _load_facts(config: Mapping[str, Any] | str | Path | None, model: str, name: str) -> ModelFacts | None:
    """Facts from ``config`` (a dict, a file or a directory), or from ``model`` when it is a local directory."""
    if isinstance(config, Mapping):
        return ModelFacts.from_config(config, name=name)
    if config is None and model in embedded_names():
        config = resolve_model(model)
    source = Path(config) if config is not None else Path(model)
    if source.is_dir():
        source = source / "config.json"
    if source.is_file():
        return ModelFacts.from_config(json.loads(source.read_text()), name=name)
    if config is not None:
        raise ModelNotFoundError(f"OpenAIEngine.config: no config.json at {config}")
    return None


def _server_message(body: object) -> str:
    """The error message in an error body: OpenAI/vLLM ``{"error": {"message"}}`` or FastAPI ``{"detail"}``."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
        for key in ("detail", "message", "error"):
            if body.get(key):
                return body[key] if isinstance(body[key], str) else json.dumps(body[key])
    return str(body) if body else ""


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _path(endpoint: Endpoint) -> str:
    return "chat/completions" if endpoint == "chat" else "completions"


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _tuple(values: list[float] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(values)


__all__ = ["OpenAIEngine"]

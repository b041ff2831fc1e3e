"""The engine interface: a validated generation request, its result, and the ``Engine`` protocol.

Every backend (transformers, vLLM, an OpenAI-compatible server) takes a :class:`GenRequest` and
returns a :class:`GenResult`, so operators never know which one serves them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from archon.core.errors import ArchonError
from archon.core.problem import Message
from budgets import ModelFacts

Prompt = str | Sequence[Message] | Sequence[int]
"""Plain text, chat messages (the engine applies the model's chat template) or token ids."""

FinishReason = Literal["stop", "length", "eos", "switch", "low_confidence"]
"""Why a completion ended: a stop string, ``max_tokens`` or the context, the model's EOS, an entropy exit
(``GenRequest.exit_entropy_above`` / ``exit_calm_below``: another model should take over), or
``GenRequest.exit_confidence_below`` (the trace was abandoned)."""


class RequestError(ArchonError, ValueError):
    """A generation request is invalid; the message names the field, the value and the limit."""


class UnsupportedFeatureError(ArchonError, NotImplementedError):
    """A request asks for something the engine (or the server behind it) cannot provide."""


class EngineError(ArchonError, RuntimeError):
    """A backend failed to serve a request (server unreachable, retries exhausted, ...)."""


MAX_N = 65_536
"""Most completions one call may ask for (more cannot fit one batch of any engine here; OpenAI's API allows 128)."""


@dataclass(frozen=True, slots=True)
class GenRequest:
    r"""One call to a language model: a prompt and how to sample ``n`` continuations of it.

    Args:
        prompt: Text, chat messages or token ids. Text is tokenized as the tokenizer does by default
            (with its special tokens, e.g. BOS); messages go through the model's chat template with
            the generation prompt added; token ids are used as given.
        n: Number of completions. They share one prefill of the prompt.
        max_tokens: Most tokens to generate per completion.
        temperature: Softmax temperature; ``0`` means greedy decoding.
        top_p: Nucleus sampling: keep the smallest set of tokens whose probability reaches ``top_p``.
        top_k: Keep only the ``top_k`` most likely tokens (``0``: all).
        stop: Strings that end a completion (e.g. a step delimiter for step-wise search).
        include_stop: Keep the matched stop string at the end of ``text`` (default: cut it off, as
            OpenAI and vLLM do). ``token_ids`` always end with the token that completed the match.
        seed: Seed of this request's random stream: the same request with the same seed gives the same
            completions.
        logprobs: Return the log-probability of every chosen token under the model's distribution
            (before temperature, top-p and top-k).
        entropies: Return the entropy (nats) of the full next-token distribution at every step
            (before temperature), as entropy-adaptive decoding needs.
        exit_entropy_above: ``(tau, w)``: end the completion *before* choosing a token when the mean
            entropy of the last ``w`` steps of this completion (this step's included; fewer at its start)
            exceeds ``tau`` -- the small model of entropy-adaptive decoding handing over. The completion
            then has every token it chose, all of them fed to the model, and ``finish_reason`` ``"switch"``.
        exit_calm_below: ``(tau, d)``: end the completion *after* a token once the entropies of its
            last ``d`` steps were all below ``tau`` -- the large model handing back. ``"switch"`` too.
            Only engines that compute full distributions locally honour the two exits (the transformers
            engine); the others refuse them.
        confidences: ``k > 0``: return DeepConf's token confidence at every step, minus the mean
            log-probability of the ``k`` most likely tokens (before temperature; higher: more confident).
        exit_confidence_below: ``(threshold, w)``: abandon the completion after a token once the mean token
            confidence of its last ``w`` tokens is below ``threshold`` (DeepConf online; needs
            ``confidences``); ``finish_reason`` ``"low_confidence"``. Transformers engine only.

    Example:
        >>> GenRequest("2 + 3 =", n=4, max_tokens=8, stop="\n").stop
        ('\n',)
        >>> GenRequest("hi", n=0)
        Traceback (most recent call last):
        ...
        archon.core.generation.RequestError: GenRequest.n: must be at least 1, got 0
    """

    prompt: Prompt
    n: int = 1
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: Sequence[str] = ()
    include_stop: bool = False
    seed: int | None = None
    logprobs: bool = False
    entropies: bool = False
    exit_entropy_above: tuple[float, int] | None = None
    exit_calm_below: tuple[float, int] | None = None
    confidences: int = 0
    exit_confidence_below: tuple[float, int] | None = None

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "prompt", _freeze_prompt(self.prompt))
        _check(isinstance(self.n, int) and self.n >= 1, "n", f"must be at least 1, got {self.n!r}")
        _check(self.n <= MAX_N, "n", f"at most {MAX_N:,} completions per call, got {self.n:,}")
        _check(
            isinstance(self.max_tokens, int) and self.max_tokens >= 1,
            "max_tokens",
            f"must be at least 1, got {self.max_tokens!r}",
        )
        _check(
            _is_number(self.temperature) and self.temperature >= 0,
            "temperature",
            f"must be >= 0 (0 is greedy), got {self.temperature!r}",
        )
        _check(_is_number(self.top_p) and 0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p!r}")
        _check(isinstance(self.top_k, int) and self.top_k >= 0, "top_k", f"must be >= 0 (0: off), got {self.top_k!r}")
        _check(all(isinstance(s, str) and s for s in stop), "stop", f"must be non-empty strings, got {stop!r}")
        _check(self.seed is None or isinstance(self.seed, int), "seed", f"must be an integer, got {self.seed!r}")
        for name in ("exit_entropy_above", "exit_calm_below", "exit_confidence_below"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _exit(name, value))
        _check(
            isinstance(self.confidences, int) and self.confidences >= 0,
            "confidences",
            f"must be >= 0 (top-k tokens; 0: off), got {self.confidences!r}",
        )
        _check(
            self.exit_confidence_below is None or self.confidences > 0,
            "exit_confidence_below",
            "needs confidences (the top-k whose mean log-probability is the token confidence)",
        )

    @property
    def entropy_exits(self) -> bool:
        """Whether this request asks for an entropy or confidence exit (only some engines can honour one)."""
        return (
            self.exit_entropy_above is not None
            or self.exit_calm_below is not None
            or self.exit_confidence_below is not None
        )

    @property
    def greedy(self) -> bool:
        """Whether this request decodes greedily (temperature 0)."""
        return self.temperature == 0

    def replace(self, **changes: Any) -> GenRequest:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def key(self) -> str:
        """A content hash of the request, for caches of generations."""
        data = asdict(self)
        data["prompt"] = _jsonable(self.prompt)
        for name in ("exit_entropy_above", "exit_calm_below", "exit_confidence_below", "confidences"):
            if not data[name]:  # unset: the keys requests had before them
                del data[name]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed.

    ``prompt_tokens`` counts every prompt token once per call (the ``n`` samples share them);
    ``cached_tokens`` is the part of them whose KV cache was reused instead of computed;
    ``generated_tokens`` sums over all completions.
    """

    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0

    @property
    def computed_prompt_tokens(self) -> int:
        """Prompt tokens actually prefilled (the ones the cost model charges)."""
        return self.prompt_tokens - self.cached_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.generated_tokens + other.generated_tokens,
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """One sampled continuation.

    ``logprobs``, ``entropies`` and ``confidences`` have one entry per token of ``token_ids`` when they
    were asked for (``None`` otherwise). ``finish_reason`` is ``"stop"`` (a stop string matched: ``stop_str``),
    ``"eos"`` (the model ended it) or ``"length"`` (``max_tokens`` or the context was reached).
    """

    text: str
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] | None = None
    entropies: tuple[float, ...] | None = None
    finish_reason: FinishReason = "length"
    stop_str: str | None = None
    confidences: tuple[float, ...] | None = None

    @property
    def num_tokens(self) -> int:
        """Generated tokens (the EOS token included when there was one)."""
        return len(self.token_ids)

    @property
    def mean_logprob(self) -> float:
        """Mean token log-probability (``nan`` without logprobs): ``exp`` of it is RPC's path probability."""
        if not self.logprobs:
            return math.nan
        return sum(self.logprobs) / len(self.logprobs)


@dataclass(frozen=True, slots=True)
class GenResult:
    """The ``n`` completions of one request, with what they cost."""

    request: GenRequest
    completions: tuple[Completion, ...]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    seconds: float = 0.0
    """Wall time from submission to result (queueing in the micro-batcher included)."""
    compute_seconds: float | None = None
    """This request's share of its batch's wall time, in proportion to its tokens (``None``: not batched)."""

    @property
    def texts(self) -> list[str]:
        """The completions' texts."""
        return [c.text for c in self.completions]


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Teacher-forced log-probabilities of given continuations of one prompt.

    ``logprobs[i][j]`` is log p(token j of continuation i | prompt, earlier tokens); ``token_ids[i]``
    are the continuation's tokens (tokenized on their own, without special tokens).
    """

    logprobs: tuple[tuple[float, ...], ...]
    token_ids: tuple[tuple[int, ...], ...]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    seconds: float = 0.0
    """Wall time of the call (queueing included)."""
    compute_seconds: float | None = None
    """This call's share of its batch's wall time, in proportion to its tokens (``None``: not batched)."""

    def total(self, i: int) -> float:
        """Sum of the log-probabilities of continuation ``i``."""
        return float(sum(self.logprobs[i]))

    def mean(self, i: int) -> float:
        """Mean token log-probability of continuation ``i`` (``nan`` when it has no token)."""
        lp = self.logprobs[i]
        return float(sum(lp) / len(lp)) if lp else math.nan


@runtime_checkable
class Engine(Protocol):
    """A batched generation backend. Awaiting many calls concurrently is how it batches them.

    Besides generating and scoring, an engine declares what it can do (:class:`EngineBase` gives the
    defaults; callers read these, never probe for attributes):

    - ``supports_n``: ``True`` when the ``n`` completions of a request share one prefill of the prompt;
      ``False`` when each is a request of its own (a server that ignores ``n``); ``None``: not known yet.
    - ``stable_samples``: ``True`` when sample ``i`` of a seeded request does not depend on the
      request's ``n`` (its rows draw from streams keyed by seed and index); such an engine serves
      samples ``first .. first + n - 1`` through :meth:`generate_from`.
    - ``encode``: a prompt's exact token ids, or ``None`` when the engine cannot tokenize locally.
    - ``tokenizer``: a Hugging Face tokenizer for counting continuation tokens, or ``None``.
    """

    name: str
    supports_n: bool | None
    stable_samples: bool
    tokenizer: Any

    def encode(self, prompt: Prompt) -> Sequence[int] | None:
        """The prompt's token ids as the model sees them, or ``None`` when the engine cannot tell."""
        ...

    async def generate_from(self, request: GenRequest, first: int) -> GenResult:
        """Samples ``first .. first + n - 1`` of a seeded request (engines with ``stable_samples``)."""
        ...

    @property
    def facts(self) -> ModelFacts:
        """The model's architecture facts, for the cost model."""
        ...

    async def generate(self, request: GenRequest) -> GenResult:
        """Sample ``request.n`` completions of ``request.prompt``."""
        ...

    async def score(self, prompt: Prompt, continuations: Sequence[str]) -> ScoreResult:
        """Log-probabilities of each continuation's tokens after ``prompt``, by teacher forcing."""
        ...

    async def aclose(self) -> None:
        """Release the engine's resources (threads, connections, memory)."""
        ...


class EngineBase:
    """The defaults of :class:`Engine`'s declared capabilities, for engines to inherit.

    ``n`` shares a prefill, samples are not stable by index, prompts cannot be tokenized locally, and
    :meth:`generate_from` is refused. An engine that can do more overrides what it can.
    """

    name: str = "engine"
    supports_n: bool | None = True
    stable_samples: bool = False
    tokenizer: Any = None

    def encode(self, prompt: Prompt) -> Sequence[int] | None:
        """``None``: this engine cannot tokenize a prompt locally (callers then bound the count)."""
        return None

    async def generate_from(self, request: GenRequest, first: int) -> GenResult:
        """Refused: this engine's samples are not stable by index."""
        raise UnsupportedFeatureError(f"engine {self.name!r} has no stable samples (generate_from)")


def prompt_kind(prompt: Prompt) -> Literal["text", "messages", "tokens"]:
    """Which of the three prompt forms ``prompt`` is."""
    if isinstance(prompt, str):
        return "text"
    if len(prompt) and all(isinstance(t, int) for t in prompt):
        return "tokens"
    return "messages"


def _freeze_prompt(prompt: Any) -> Prompt:
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, Sequence) or not len(prompt):
        raise RequestError(f"GenRequest.prompt: must be text, chat messages or token ids, got {prompt!r:.80}")
    if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        if any(t < 0 for t in prompt):
            raise RequestError("GenRequest.prompt: token ids must be >= 0")
        return tuple(prompt)
    for i, m in enumerate(prompt):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            msg = f"a chat message needs string 'role' and 'content', got {m!r:.60}"
            raise RequestError(f"GenRequest.prompt[{i}]: {msg}")
    return tuple(dict(m) for m in prompt)  # type: ignore[return-value]


def _jsonable(prompt: Prompt) -> Any:
    return prompt if isinstance(prompt, str) else list(prompt)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _exit(name: str, value: Any) -> tuple[float, int]:
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    tau, width = value if ok else (None, None)
    ok = ok and _is_number(tau) and tau >= 0 and isinstance(width, int) and not isinstance(width, bool) and width >= 1
    _check(ok, name, f"must be (tau >= 0, tokens >= 1), got {value!r}")
    return float(tau), int(width)  # type: ignore[arg-type]


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise RequestError(f"GenRequest.{name}: {message}")

"""Entropy-adaptive decoding: a small model writes, a large one takes over where the small one is unsure.

After Entropy Adaptive Decoding (EAD): the ``small`` engine writes by default; when the mean of its
next-token entropy over the last ``window`` steps exceeds ``tau``, it stops *before* choosing that
token and the ``large`` engine writes from there, until its own entropy has stayed below
``tau_large`` (default ``tau``) for ``dwell`` tokens in a row; then the small model writes again, and so
on, until a stop string, EOS or ``max_tokens``.

Each turn is one ordinary request to its engine, with the prompt and every token written so far as
token ids and an entropy exit (:attr:`~archon.core.GenRequest.exit_entropy_above` for the small
model, :attr:`~archon.core.GenRequest.exit_calm_below` for the large one). So:

- the incoming model prefills only the tokens it has not seen: its engine's prefix cache holds the KV
  of its last turn, and a :class:`~archon.core.ChargedEngine` charges the tokens it computed (the large
  model's first turn prefills the whole prompt; a problem the small model writes alone never pays for
  the large model's prefill);
- turns of concurrent problems (and of the ``n`` samples of one) are batched by each engine like any
  other calls: one decode batch of every small-model turn that is pending, one of the large model's;
- every token's log-probability and entropy are those of the model that wrote it, and each
  :class:`SwitchedCompletion` says which model wrote which tokens (its :attr:`~SwitchedCompletion.segments`).

The two models must share one tokenizer (checked on the prompt). The window restarts with each of the
small model's turns (fewer than ``window`` entropies at a turn's start).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from archon.core import Completion, Engine, EngineBase, GenRequest, GenResult, RequestError, Usage
from budgets import ModelFacts
from samplers.stops import apply_stop, find_stop
from samplers.streams import stream_key

Writer = Literal["small", "large"]


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of tokens one model wrote."""

    model: Writer
    token_ids: tuple[int, ...]
    text: str


@dataclass(frozen=True, slots=True)
class SwitchedCompletion:
    """A completion written by two models in turns, and who wrote what."""

    completion: Completion
    segments: tuple[Segment, ...]
    usage: Usage
    """Both engines' usage summed (prompt tokens count once per turn, as each engine saw them)."""

    @property
    def large_tokens(self) -> int:
        """Tokens the large model wrote."""
        return sum(len(s.token_ids) for s in self.segments if s.model == "large")

    @property
    def small_tokens(self) -> int:
        """Tokens the small model wrote."""
        return sum(len(s.token_ids) for s in self.segments if s.model == "small")

    @property
    def switches(self) -> int:
        """How many times the writer changed."""
        return max(0, len(self.segments) - 1)

    def trace(self) -> dict[str, Any]:
        """Who wrote which tokens, for a candidate's metadata: ``[model, tokens, text]`` per segment."""
        return {
            "segments": [[s.model, len(s.token_ids), s.text] for s in self.segments],
            "small_tokens": self.small_tokens,
            "large_tokens": self.large_tokens,
            "switches": self.switches,
        }


class EntropySwitch(EngineBase):
    """Two engines that write one completion in turns, switching on the writer's entropy.

    It is an :class:`~archon.core.Engine` too (``generate`` returns the completions and the summed usage), so
    anything that samples can sample through it; :meth:`complete` also returns who wrote what. Pass
    :class:`~archon.core.ChargedEngine` objects to have every turn charged to a ledger.

    Args:
        small: The engine that writes by default (its entropies must be exact: a local engine).
        large: The engine that takes over.
        tau: Entropy (nats) above which the small model's rolling mean hands over.
        window: Steps of the small model's rolling mean.
        dwell: Consecutive large-model tokens with entropy below ``tau_large`` before it hands back.
        tau_large: The large model's threshold (default ``tau``).

    Example:
        >>> EntropySwitch(object(), object(), tau=-1)  # type: ignore[arg-type]
        Traceback (most recent call last):
        ...
        archon.core.generation.RequestError: EntropySwitch.tau: must be >= 0, got -1
    """

    supports_n = True

    def __init__(
        self,
        small: Engine,
        large: Engine,
        *,
        tau: float,
        window: int = 5,
        dwell: int = 4,
        tau_large: float | None = None,
    ) -> None:
        for name, value, low in (("tau", tau, 0), ("window", window, 1), ("dwell", dwell, 1)):
            if not value >= low:
                raise RequestError(f"EntropySwitch.{name}: must be >= {low}, got {value}")
        if tau_large is not None and not tau_large >= 0:
            raise RequestError(f"EntropySwitch.tau_large: must be >= 0, got {tau_large}")
        self.small, self.large = small, large
        self.tau, self.window, self.dwell = float(tau), int(window), int(dwell)
        self.tau_large = self.tau if tau_large is None else float(tau_large)
        self.name = f"{getattr(small, 'name', 'small')}+{getattr(large, 'name', 'large')}"
        self.tokenizer = getattr(small, "tokenizer", None)

    @property
    def facts(self) -> ModelFacts:
        """The small model's facts (each turn is charged by its own engine)."""
        return self.small.facts

    def encode(self, prompt: Any) -> Sequence[int] | None:
        """The prompt's token ids (the small engine's)."""
        return self.small.encode(prompt)

    async def generate(self, request: GenRequest) -> GenResult:
        """``request.n`` completions written in turns (:meth:`complete` without the segments)."""
        done = await self.complete(request)
        usage = sum((d.usage for d in done), Usage())
        return GenResult(request, tuple(d.completion for d in done), usage, self.name)

    async def complete(self, request: GenRequest) -> list[SwitchedCompletion]:
        """``request.n`` completions, each written in turns by the two models (concurrently, batched)."""
        if request.entropy_exits:
            raise RequestError("EntropySwitch: the request already has an entropy exit; it sets its own")
        ids = self._prompt_ids(request)
        return list(await asyncio.gather(*(self._one(request, ids, i) for i in range(request.n))))

    def _prompt_ids(self, request: GenRequest) -> tuple[int, ...]:
        small, large = self.small.encode(request.prompt), self.large.encode(request.prompt)
        if small is None or large is None:
            raise RequestError("EntropySwitch: both engines must tokenize locally (token-level switching)")
        if tuple(small) != tuple(large):
            raise RequestError(
                f"EntropySwitch: {self.small.name!r} and {self.large.name!r} tokenize the prompt differently; "
                "token-level switching needs two models with one tokenizer"
            )
        return tuple(small)

    async def _one(self, request: GenRequest, ids: tuple[int, ...], index: int) -> SwitchedCompletion:
        written: list[int] = []
        logprobs: list[float] = []
        entropies: list[float] = []
        segments: list[Segment] = []
        usage = Usage()
        writer: Writer = "small"
        finish: str = "length"
        turn = 0
        while len(written) < request.max_tokens:
            engine = self.small if writer == "small" else self.large
            exits: dict[str, Any] = (
                {"exit_entropy_above": (self.tau, self.window)}
                if writer == "small"
                else {"exit_calm_below": (self.tau_large, self.dwell)}
            )
            seed = None if request.seed is None else stream_key(request.seed, index) ^ turn
            sub = request.replace(
                prompt=(*ids, *written), n=1, max_tokens=request.max_tokens - len(written), seed=seed, **exits
            )
            result = await engine.generate(sub)
            usage = usage + result.usage
            c = result.completions[0]
            if c.token_ids:
                written += c.token_ids
                logprobs += c.logprobs or ()
                entropies += c.entropies or ()
                segments.append(Segment(writer, tuple(c.token_ids), c.text))
            turn += 1
            if c.finish_reason != "switch":
                finish = c.finish_reason
                break
            if writer == "large" and not c.token_ids:  # cannot happen (the large model writes >= dwell tokens)
                break
            writer = "large" if writer == "small" else "small"
            if request.stop and self._stopped(written, request.stop):
                finish = "stop"
                break
        completion = self._completion(request, written, logprobs, entropies, finish)
        return SwitchedCompletion(completion, tuple(segments), usage)

    def _decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True) if self.tokenizer is not None else ""

    def _stopped(self, tokens: Sequence[int], stop: Sequence[str]) -> bool:
        """A stop string that straddles two turns (each engine sees only its own turn's text)."""
        return find_stop(self._decode(tokens), stop) is not None

    def _completion(
        self, request: GenRequest, tokens: list[int], logprobs: list[float], entropies: list[float], finish: str
    ) -> Completion:
        text, stop_str = apply_stop(self._decode(tokens), request.stop, include_stop=request.include_stop)
        if stop_str is not None:
            finish = "stop"
        return Completion(
            text=text,
            token_ids=tuple(tokens),
            logprobs=tuple(logprobs) if request.logprobs else None,
            entropies=tuple(entropies) if request.entropies else None,
            finish_reason=finish,  # type: ignore[arg-type]
            stop_str=stop_str if finish == "stop" else None,
        )

    async def aclose(self) -> None:
        """Nothing of its own to release (the two engines belong to their owner)."""

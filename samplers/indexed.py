"""Reproducible sampling: sample ``i`` of a seeded request is the same whatever the request's ``n``.

:class:`IndexSeededEngine` wraps any engine and draws the samples of a seeded request by index: the
engine's own row ``i`` when it declares ``stable_samples`` (the transformers engine, whose rows draw
from streams keyed by seed and index), else the single completion of the same request with ``n=1`` and
the seed :func:`derive_seed` ``(seed, i)``. A plain run draws through it so that the ``best.yaml`` a
tuning study writes reproduces its trial's answers; a tuning study plugs a
:class:`~samplers.cache.GenerationCache` into it as the ``store`` that keeps every sample, so a trial
that asks for 16 samples reuses samples 0-15 of the 64 an earlier trial drew.

Results never depend on the store: without one, samples are drawn by index the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from archon.core.generation import Completion, Engine, EngineBase, GenRequest, GenResult, Prompt, RequestError, Usage


def derive_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a request seeded with ``seed``: a 63-bit hash of the pair.

    Example:
        >>> derive_seed(7, 0) == derive_seed(7, 0), derive_seed(7, 0) == derive_seed(7, 1)
        (True, False)
        >>> 0 <= derive_seed(-3, 5) < 2**63
        True
    """
    digest = hashlib.sha256(json.dumps(["sample-seed", seed, index]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True, slots=True)
class DrawnSample:
    """One drawn sample: the completion, its prompt's token count and what drawing it took.

    ``generated_tokens`` is the completion's token count (from the engine's usage when the
    completion carries no token ids); ``compute_seconds`` is the sample's share of its batch's time.
    """

    completion: Completion
    prompt_tokens: int
    generated_tokens: int
    compute_seconds: float


class SampleStore(Protocol):
    """Where drawn samples are kept by key (:class:`~samplers.cache.GenerationCache`)."""

    def key(self, identity: str, request: GenRequest, index: int) -> str:
        """The key of sample ``index`` of ``request`` from the model named by ``identity``."""
        ...

    def get_many(self, keys: Iterable[str]) -> Mapping[str, DrawnSample]:
        """The stored samples of those ``keys`` that are stored."""
        ...

    def put_many(self, entries: Mapping[str, DrawnSample]) -> int:
        """Store samples by key (keys already stored keep theirs); returns how many were new."""
        ...


@dataclass(slots=True)
class DrawStats:
    """Counters of an :class:`IndexSeededEngine`.

    ``requests`` counts every ``generate`` call (unseeded ones, which pass straight through, too);
    ``samples_served`` and ``tokens_served`` count what was returned, ``samples_generated`` and
    ``tokens_generated`` what the wrapped engine actually drew; ``hits`` counts samples found in the
    store (a greedy request looks up one sample, whatever its ``n``).
    """

    requests: int = 0
    samples_served: int = 0
    samples_generated: int = 0
    tokens_served: int = 0
    tokens_generated: int = 0
    hits: int = 0


class IndexSeededEngine(EngineBase):
    """An engine whose seeded samples are drawn by index, optionally kept in a :class:`SampleStore`.

    Sample ``i`` of a request with a seed never depends on the request's ``n``:

    - When ``inner.stable_samples`` is true (:class:`~samplers.transformers_engine.TransformersEngine`:
      its row ``i`` draws from a stream keyed by (seed, ``i``)), sample ``i`` is the engine's own
      completion ``i``. Each run of consecutive samples missing from the store (usually one: the
      store holds a prompt's first samples) is drawn by one ``inner.generate_from(request, first)``.
    - Otherwise (servers, vLLM) sample ``i`` is the completion of the request with ``n=1`` and seed
      ``derive_seed(seed, i)``; the missing ones are requested from ``inner`` concurrently (so its
      micro-batcher serves them in one batch and prefills the prompt once).

    Drawn samples are stored and returned with the stored ones in index order. A greedy request
    (temperature 0) draws one sample and repeats it ``n`` times. Requests without a seed are not
    reproducible: they pass straight through and are not stored.

    Usage comes in two modes. ``nominal`` (what a tuning study needs): the prompt once (per prefill the
    wrapped engine would need for ``n`` samples), no cached prompt tokens, and the samples' tokens, with
    ``compute_seconds`` the sum of the samples' own; it is the same whether the samples were drawn now
    or came from the store, so a :class:`~archon.core.ChargedEngine` on top charges a trial the same.
    ``actual`` (a plain run, where every sample is drawn live): the prompt tokens the wrapped engine
    found already cached are reported as cached, so prefix-cache hits are charged as such.

    The engine declares the wrapped engine's capabilities; ``name``, ``facts``, ``score``, ``encode``,
    ``tokenizer``, ``close`` and ``aclose`` are the wrapped engine's.

    Args:
        inner: The engine that draws samples.
        store: Where samples are kept (``None``: nowhere; samples are still drawn by index, so results
            equal those with a store).
        identity: Names the model and everything about the engine that changes its samples (e.g. the
            engine config's JSON); part of every key.
        usage: ``"nominal"`` or ``"actual"`` (above).

    Example:
        >>> import asyncio
        >>> from samplers.transformers_engine import TransformersEngine
        >>> engine = IndexSeededEngine(TransformersEngine("tiny-l"), identity="tiny-l")
        >>> request = GenRequest("3 * 4 - 2 =", n=4, max_tokens=4, temperature=1.5, seed=1)
        >>> few = asyncio.run(engine.generate(request))
        >>> more = asyncio.run(engine.generate(request.replace(n=6)))
        >>> more.completions[:4] == few.completions
        True
        >>> engine.close()
    """

    def __init__(
        self,
        inner: Engine,
        store: SampleStore | None = None,
        *,
        identity: str,
        usage: Literal["nominal", "actual"] = "nominal",
    ) -> None:
        if usage not in ("nominal", "actual"):
            raise ValueError(f"usage must be 'nominal' or 'actual', got {usage!r}")
        self.inner = inner
        self.store = store
        self.identity = identity
        self.usage = usage
        self.draw_stats = DrawStats()
        self.name = inner.name

    def __repr__(self) -> str:
        return f"IndexSeededEngine({self.inner!r}, {self.store!r}, identity={self.identity!r})"

    @property
    def facts(self) -> Any:
        """The wrapped engine's model facts."""
        return self.inner.facts

    @property
    def stable_samples(self) -> bool:  # type: ignore[override]
        """Always: seeded samples are drawn by index (``generate_from`` serves any run of them)."""
        return True

    @property
    def supports_n(self) -> bool:  # type: ignore[override]
        """Whether ``n`` samples share one prefill (``False`` when the wrapped engine fans ``n`` out)."""
        return self.inner.supports_n is not False

    @property
    def tokenizer(self) -> Any:  # type: ignore[override]
        """The wrapped engine's tokenizer."""
        return self.inner.tokenizer

    def encode(self, prompt: Prompt) -> Any:
        """The wrapped engine's token ids of ``prompt`` (``None`` when it cannot tokenize)."""
        return self.inner.encode(prompt)

    async def score(self, prompt: Prompt, continuations: Any) -> Any:
        """The wrapped engine's teacher-forced scores."""
        return await self.inner.score(prompt, continuations)

    def close(self) -> None:
        """Close the wrapped engine (when it has a synchronous ``close``)."""
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            closer()

    async def aclose(self) -> None:
        """Close the wrapped engine."""
        await self.inner.aclose()

    async def generate(self, request: GenRequest) -> GenResult:
        """The ``n`` completions of ``request``, from the store where stored, else drawn and stored."""
        return await self.generate_from(request, 0)

    async def generate_from(self, request: GenRequest, first: int) -> GenResult:
        """Samples ``first`` to ``first + n - 1`` of ``request`` (without a seed, ``first`` changes nothing)."""
        if first < 0:
            raise RequestError(f"generate_from: first must be >= 0, got {first}")
        start = time.perf_counter()
        stats = self.draw_stats
        stats.requests += 1
        if request.seed is None:
            result = await self.inner.generate(request)
            tokens = _generated_tokens(result)
            stats.samples_served += len(result.completions)
            stats.samples_generated += len(result.completions)
            stats.tokens_served += tokens
            stats.tokens_generated += tokens
            return result

        indices = [0] if request.greedy else list(range(first, first + request.n))
        if self.store is None:  # nothing to look up: indices stand in for keys
            keys = {i: str(i) for i in indices}
        else:
            keys = {i: self.store.key(self.identity, request, i) for i in indices}
        found = dict(self.store.get_many(keys.values())) if self.store is not None else {}
        missing = [i for i in indices if keys[i] not in found]
        drawn, hit = await self._draw(request, request.seed, missing, keys)
        entries = [found[keys[i]] if keys[i] in found else drawn[i] for i in indices]
        if request.greedy:
            entries *= request.n

        generated = sum(e.generated_tokens for e in entries)
        prefills = 1 if self.supports_n else request.n
        cached = hit * prefills if self.usage == "actual" and len(drawn) == len(keys) else 0
        stats.hits += len(found)
        stats.samples_served += len(entries)
        stats.tokens_served += generated
        stats.samples_generated += len(drawn)
        stats.tokens_generated += sum(e.generated_tokens for e in drawn.values())
        return GenResult(
            request=request,
            completions=tuple(e.completion for e in entries),
            usage=Usage(
                prompt_tokens=entries[0].prompt_tokens * prefills, cached_tokens=cached, generated_tokens=generated
            ),
            model=self.inner.name,
            seconds=time.perf_counter() - start,
            compute_seconds=sum(e.compute_seconds for e in entries),
        )

    async def _draw(
        self, request: GenRequest, seed: int, indices: list[int], keys: dict[int, str]
    ) -> tuple[dict[int, DrawnSample], int]:
        """Draw the samples ``indices`` concurrently and store them; re-raise the first failure.

        Also returns the prompt tokens the wrapped engine already had cached (the fewest any draw reported:
        the first of a batch computes the prompt, the rest reuse it).
        """
        if not indices:
            return {}, 0
        drawn: dict[int, DrawnSample] = {}
        results: list[GenResult | BaseException] = []
        if self.inner.stable_samples:  # each run of consecutive missing indices is one request for that run
            runs: list[list[int]] = []
            for i in indices:
                if runs and runs[-1][-1] == i - 1:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            requests = [self.inner.generate_from(request.replace(n=len(run)), run[0]) for run in runs]
            results = list(await asyncio.gather(*requests, return_exceptions=True))
            for run, r in zip(runs, results, strict=True):
                if isinstance(r, GenResult):
                    drawn.update((i, _completion_entry(r, j, _sample_seconds(r))) for j, i in enumerate(run))
        else:
            singles = [request.replace(n=1, seed=derive_seed(seed, i)) for i in indices]
            results = list(await asyncio.gather(*(self.inner.generate(r) for r in singles), return_exceptions=True))
            for i, r in zip(indices, results, strict=True):
                if isinstance(r, GenResult):
                    drawn[i] = _completion_entry(r, 0, _sample_seconds(r))
        live = [r for r in results if isinstance(r, GenResult)]
        hit = min((min(r.usage.cached_tokens, r.usage.prompt_tokens) for r in live), default=0)
        if self.store is not None and drawn:
            self.store.put_many({keys[i]: entry for i, entry in drawn.items()})
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return drawn, hit


def _sample_seconds(result: GenResult) -> float:
    """Each completion's share of the compute time of ``result``."""
    seconds = result.seconds if result.compute_seconds is None else result.compute_seconds
    return seconds / max(1, len(result.completions))


def _completion_entry(result: GenResult, index: int, seconds: float) -> DrawnSample:
    """The entry of completion ``index`` of ``result``."""
    completion = result.completions[index]
    if completion.token_ids:
        generated = completion.num_tokens
    else:
        generated = round(result.usage.generated_tokens / len(result.completions))
    return DrawnSample(completion, result.usage.prompt_tokens, generated, seconds)


def _generated_tokens(result: GenResult) -> int:
    """Tokens generated: the completions' token ids, else the engine's usage."""
    if all(c.token_ids for c in result.completions):
        return sum(c.num_tokens for c in result.completions)
    return result.usage.generated_tokens

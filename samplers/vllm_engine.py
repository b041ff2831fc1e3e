r"""The vLLM engine: an :class:`~archon.core.Engine` on vLLM's offline ``vllm.LLM`` API.

Concurrent :meth:`VLLMEngine.generate` and :meth:`VLLMEngine.score` calls meet in a
:class:`~samplers.batcher.MicroBatcher`; each flush becomes ONE ``llm.generate(prompts, params)``
call with one ``SamplingParams`` per prompt, and vLLM's scheduler takes it from there (continuous
batching, paged attention). Automatic prefix caching is always on, so the ``n`` samples of a prompt
and the children of a beam or particle share their prefix's KV cache; ``Usage.cached_tokens`` reports
the prefix-cache hits vLLM saw (``RequestOutput.num_cached_tokens``).

The mapping in both directions is pure functions, testable without vLLM:
:func:`sampling_kwargs` (``GenRequest`` → ``SamplingParams`` keyword arguments),
:func:`completion_from_output` / :func:`result_from_output` (``RequestOutput`` → ``GenResult``) and
:func:`continuation_logprobs` (``prompt_logprobs`` → teacher-forced scores).

What vLLM does not give, and what this engine does about it:

- **Entropies.** vLLM returns the log-probabilities of the top ``k`` tokens, never the full
  next-token distribution, so the exact entropy ``GenRequest.entropies`` asks for is not available.
  By default such a request is refused with :class:`~archon.core.UnsupportedFeatureError`. With
  ``VLLMEngine(..., entropy_top_k=k)`` the engine asks vLLM for the top ``k`` log-probabilities and
  returns :func:`entropy_lower_bound` of them: the entropy of the distribution in which the tail
  beyond the top ``k`` is lumped into one outcome. It is a lower bound on the true entropy, exact
  when the tail has no mass; ``k`` is capped by vLLM's ``max_logprobs`` (default 20, raise it
  through ``llm_kwargs``).
- **Greedy with** ``n > 1``. vLLM refuses ``n > 1`` at temperature 0; the engine asks for one
  greedy completion and repeats it ``n`` times. ``Usage.generated_tokens`` counts the tokens
  actually decoded (one completion's), as the cost model charges computed work only.
- **Log-probabilities** are vLLM's. The V1 engine (vLLM >= 0.10, ``logprobs_mode="raw_logprobs"``,
  its default) returns them before temperature, penalties, top-p and top-k, as
  ``GenRequest.logprobs`` defines; older engines may return them after temperature scaling.
- **Scores** use ``prompt_logprobs``: each continuation is one request ``prompt + continuation``
  with ``max_tokens=1``, and the log-probabilities at the continuation's positions are read off.
  The continuation is tokenized on its own (no special tokens) and appended to the prompt's tokens,
  as :class:`~archon.core.ScoreResult` defines; for tokenizers that merge across the boundary (a
  leading space, a word split between prompt and continuation) this tokenization can differ from
  the one the joined text would get, and it is the one scored. vLLM does not read the prefix cache
  for requests with ``prompt_logprobs``, so every continuation recomputes its prompt.

Prompts are tokenized here, not by vLLM, so their length can be checked per request before the
batch runs: text with the tokenizer's default special tokens (as vLLM would), chat messages
through the tokenizer's chat template with the generation prompt added (rendered, then encoded
without special tokens, as Hugging Face's ``apply_chat_template`` does), token ids as given. vLLM
receives token ids (``{"prompt_token_ids": [...]}``). A request vLLM would reject for the whole
batch (prompt at least as long as ``max_model_len``, token ids outside the vocabulary) fails alone
with :class:`~archon.core.RequestError`; if the batched call still fails, the batch is rerun one
request at a time so that only the culprit fails.

Model names are resolved as everywhere in the project (:func:`archon.core.models.resolve_model`):
an embedded model's name, a local model directory, or a Hugging Face hub id.

This module was written against vLLM's documented API, checked against the v0.8.3 documentation
(``SamplingParams``, ``LLM``) and the main-branch sources of ``vllm/sampling_params.py``,
``vllm/outputs.py`` and ``vllm/logprobs.py`` (v0.11 era). It is unverified on this project's
machines, which cannot run vLLM: the tests drive it with a stand-in ``LLM``. Importing it imports
neither vLLM nor torch; vLLM is imported when an engine is built without an ``llm``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from archon.core import (
    Completion,
    EngineBase,
    EngineError,
    GenRequest,
    GenResult,
    Prompt,
    RequestError,
    ScoreResult,
    UnsupportedFeatureError,
    Usage,
    prompt_kind,
)
from archon.core.batcher import MicroBatcher
from archon.core.generation import FinishReason
from archon.core.models import resolve_model
from budgets import ModelFacts

INSTALL_HINT = 'pip install "archon-its[vllm]" (vLLM needs a CUDA GPU)'
"""How to get vLLM, for error messages."""

_OWN_OPTIONS = ("model", "dtype", "seed", "gpu_memory_utilization", "enable_prefix_caching")


def import_vllm() -> Any:
    """Import and return the ``vllm`` module, or say in one line how to install it.

    Raises:
        UnsupportedFeatureError: vLLM is not installed, or fails to import.
    """
    try:
        import vllm
    except ModuleNotFoundError as exc:
        if exc.name not in (None, "vllm"):
            raise UnsupportedFeatureError(f"vLLM failed to import: {_one_line(exc)}; {INSTALL_HINT}") from exc
        raise UnsupportedFeatureError(f"VLLMEngine needs vLLM, which is not installed: {INSTALL_HINT}") from exc
    except ImportError as exc:
        raise UnsupportedFeatureError(f"vLLM failed to import: {_one_line(exc)}; {INSTALL_HINT}") from exc
    return vllm


def sampling_kwargs(request: GenRequest, *, entropy_top_k: int | None = None) -> dict[str, Any]:
    r"""The keyword arguments of ``vllm.SamplingParams`` for ``request``.

    Greedy requests (temperature 0) ask for one completion (vLLM refuses ``n > 1`` there; the
    engine repeats it) with top-p and top-k off. Top-k "off" is ``-1``, which every vLLM release
    accepts (``0`` is refused before v0.9). ``logprobs=1`` returns the chosen token's log-probability;
    entropies need ``entropy_top_k`` (see :func:`entropy_lower_bound`).

    Args:
        request: The request.
        entropy_top_k: How many top log-probabilities to ask for when the request wants entropies;
            ``None`` refuses such requests.

    Raises:
        UnsupportedFeatureError: The request asks for entropies and ``entropy_top_k`` is ``None``, or for
            an entropy exit.

    Example:
        >>> kw = sampling_kwargs(GenRequest("2 + 3 =", n=4, max_tokens=8, stop="\n", top_k=0))
        >>> kw["n"], kw["top_k"], kw["stop"], kw["logprobs"]
        (4, -1, ['\n'], None)
        >>> sampling_kwargs(GenRequest("x", n=3, temperature=0))["n"]
        1
    """
    if request.entropy_exits or request.confidences:
        raise UnsupportedFeatureError(
            "GenRequest entropy/confidence exits and token confidences: the vLLM engine does not compute "
            "them; entropy-adaptive switching and DeepConf need the transformers engine"
        )
    if request.entropies and entropy_top_k is None:
        raise UnsupportedFeatureError(
            "GenRequest.entropies: vLLM returns top-k log-probabilities, not the full distribution; "
            "build VLLMEngine(..., entropy_top_k=20) for a top-k lower bound, or use the transformers engine"
        )
    greedy = request.greedy
    logprobs: int | None = None
    if request.entropies:
        logprobs = entropy_top_k
    elif request.logprobs:
        logprobs = 1
    return {
        "n": 1 if greedy else request.n,
        "temperature": float(request.temperature),
        "top_p": 1.0 if greedy else float(request.top_p),
        "top_k": -1 if greedy or request.top_k == 0 else request.top_k,
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "include_stop_str_in_output": request.include_stop,
        "seed": request.seed,
        "logprobs": logprobs,
    }


def score_kwargs() -> dict[str, Any]:
    """The keyword arguments of ``vllm.SamplingParams`` for teacher forcing: one greedy token, prompt logprobs.

    ``prompt_logprobs=1`` returns, at every prompt position, the log-probability of the prompt's
    own token (plus the top one).

    Example:
        >>> score_kwargs()["prompt_logprobs"]
        1
    """
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "prompt_logprobs": 1}


def entropy_lower_bound(logprobs: Iterable[float]) -> float:
    """Entropy (nats) of a distribution known only by some of its tokens' log-probabilities.

    The unseen tokens are lumped into one outcome of the remaining mass ``r``:
    ``-Σ p·log p - r·log r``. Lumping outcomes never raises entropy, so this is a lower bound on the
    true entropy, exact when ``r`` is 0.

    Example:
        >>> round(entropy_lower_bound([math.log(0.5), math.log(0.5)]), 4)  # the whole distribution
        0.6931
        >>> round(entropy_lower_bound([math.log(0.5)]), 4)  # the other half unseen: still log 2
        0.6931
    """
    probs = [math.exp(lp) for lp in logprobs if lp > -math.inf]
    entropy = -sum(p * math.log(p) for p in probs if p > 0)
    rest = 1.0 - sum(probs)
    if rest > 1e-12:
        entropy -= rest * math.log(rest)
    return max(entropy, 0.0)


def completion_from_output(output: Any, *, logprobs: bool = False, entropies: bool = False) -> Completion:
    """One vLLM ``CompletionOutput`` as a :class:`~archon.core.Completion`.

    ``finish_reason`` ``"length"`` stays ``"length"``; ``"stop"`` becomes ``"stop"`` with the
    matched string when ``stop_reason`` is a string, and ``"eos"`` when it is ``None`` (the EOS
    token) or a token id (one of the generation config's extra EOS ids: the engine asks for no stop
    token ids of its own).

    Args:
        output: The ``CompletionOutput`` (``text``, ``token_ids``, ``logprobs``, ``finish_reason``,
            ``stop_reason``).
        logprobs: Fill ``Completion.logprobs`` with the chosen tokens' log-probabilities.
        entropies: Fill ``Completion.entropies`` with :func:`entropy_lower_bound` of each step's
            returned log-probabilities.

    Raises:
        EngineError: vLLM aborted the completion, or did not return the log-probabilities asked for.
    """
    token_ids = tuple(int(t) for t in output.token_ids)
    reason, stop_str = _finish(getattr(output, "finish_reason", None), getattr(output, "stop_reason", None))
    steps: Sequence[Mapping[int, Any]] | None = getattr(output, "logprobs", None)
    if (logprobs or entropies) and (steps is None or len(steps) < len(token_ids)):
        raise EngineError("vLLM returned no log-probabilities for a request that asked for them")
    chosen: tuple[float, ...] | None = None
    spread: tuple[float, ...] | None = None
    if logprobs and steps is not None:
        chosen = tuple(_logprob_of(steps[i], t) for i, t in enumerate(token_ids))
    if entropies and steps is not None:
        spread = tuple(entropy_lower_bound(_value(v) for v in steps[i].values()) for i in range(len(token_ids)))
    return Completion(
        text=str(output.text),
        token_ids=token_ids,
        logprobs=chosen,
        entropies=spread,
        finish_reason=reason,
        stop_str=stop_str,
    )


def result_from_output(request: GenRequest, output: Any, *, model: str = "") -> GenResult:
    """A vLLM ``RequestOutput`` as the :class:`~archon.core.GenResult` of ``request``.

    Usage: ``prompt_tokens`` is the prompt's length, ``cached_tokens`` vLLM's prefix-cache hits
    (``num_cached_tokens``, 0 when the release does not report it), ``generated_tokens`` the tokens
    decoded over all returned completions. A greedy request with ``n > 1`` got one completion from
    vLLM, repeated here ``n`` times (and counted once).

    Raises:
        EngineError: vLLM returned fewer completions than asked for, or aborted one.
    """
    outs = sorted(output.outputs, key=lambda o: getattr(o, "index", 0))
    completions = [completion_from_output(o, logprobs=request.logprobs, entropies=request.entropies) for o in outs]
    if request.greedy and len(completions) == 1:
        completions *= request.n
    if len(completions) != request.n:
        raise EngineError(f"vLLM returned {len(completions)} completions for n={request.n}")
    prompt_tokens = len(output.prompt_token_ids or ())
    cached = min(int(getattr(output, "num_cached_tokens", None) or 0), prompt_tokens)
    usage = Usage(prompt_tokens, cached, sum(len(o.token_ids) for o in outs))
    return GenResult(request=request, completions=tuple(completions), usage=usage, model=model)


def continuation_logprobs(output: Any, start: int) -> tuple[float, ...]:
    """Log-probabilities of a prompt's tokens from position ``start`` on, from vLLM's ``prompt_logprobs``.

    ``prompt_logprobs[i]`` maps token ids to log-probabilities at position ``i`` (``None`` at
    position 0, which has no context); the prompt's own token is always among them.

    Raises:
        EngineError: vLLM returned no prompt log-probabilities for a position at or after ``start``.
    """
    ids = list(output.prompt_token_ids or ())
    table = output.prompt_logprobs
    if start < 1 or table is None or len(table) < len(ids) or any(table[i] is None for i in range(start, len(ids))):
        raise EngineError("vLLM returned no prompt log-probabilities for the continuation")
    return tuple(_logprob_of(table[i], ids[i]) for i in range(start, len(ids)))


@dataclass
class _Job:
    """A generate or score call, as queued on the micro-batcher."""

    request: GenRequest | None = None
    prompt: Prompt | None = None
    continuations: Sequence[str] = ()


@dataclass
class _Prepared:
    """A job ready for vLLM: its prompts, their sampling parameters, and how to read the outputs back."""

    prompts: list[dict[str, list[int]]]
    params: list[Any]
    finish: Callable[[Sequence[Any]], Any]


class VLLMEngine(EngineBase):
    r"""An :class:`~archon.core.Engine` on vLLM's offline ``LLM``.

    Args:
        model: A Hugging Face hub id or a local model directory, passed to ``vllm.LLM``.
        dtype: Weights' and activations' number format for vLLM (``"auto"``: the model's).
        max_batch: Most requests (``generate`` and ``score`` calls) in one ``llm.generate`` call.
        max_batch_tokens: Most tokens (prompts plus ``n × max_tokens``) in one ``llm.generate`` call;
            vLLM schedules within it on its own.
        gpu_memory_utilization: Fraction of GPU memory vLLM may take (weights and KV cache).
        seed: vLLM's global seed (requests with a ``seed`` use their own stream).
        llm_kwargs: More ``vllm.LLM`` arguments (``max_model_len``, ``tensor_parallel_size``,
            ``max_logprobs`` ...). Prefix caching is always on.
        llm: An already built ``vllm.LLM`` (or a stand-in with its interface) to use instead of
            building one from ``model``.
        sampling_params: The class that builds sampling parameters (default ``vllm.SamplingParams``);
            pass it with a stand-in ``llm``.
        entropy_top_k: Serve ``GenRequest.entropies`` with :func:`entropy_lower_bound` over the top
            ``entropy_top_k`` log-probabilities (an approximation; see the module notes).
            ``None`` (the default) refuses such requests.

    Raises:
        UnsupportedFeatureError: vLLM is needed (no ``llm`` or no ``sampling_params`` given) but is
            not installed.
        ValueError: An option is out of range, or ``llm_kwargs`` repeats one of the options above.

    Example:
        >>> import asyncio
        >>> engine = VLLMEngine("Qwen/Qwen2.5-0.5B-Instruct")  # doctest: +SKIP
        >>> result = asyncio.run(engine.generate(GenRequest("2 + 3 =", n=4, max_tokens=8)))  # doctest: +SKIP
        >>> len(result.completions), result.usage.prompt_tokens > 0  # doctest: +SKIP
        (4, True)
    """

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        max_batch: int = 256,
        max_batch_tokens: int = 1 << 20,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
        llm_kwargs: Mapping[str, Any] | None = None,
        llm: Any | None = None,
        sampling_params: Callable[..., Any] | None = None,
        entropy_top_k: int | None = None,
    ) -> None:
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"VLLMEngine: gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization!r}")
        if entropy_top_k is not None and (not isinstance(entropy_top_k, int) or entropy_top_k < 1):
            raise ValueError(f"VLLMEngine: entropy_top_k must be at least 1 (or None), got {entropy_top_k!r}")
        repeated = sorted(set(llm_kwargs or {}) & set(_OWN_OPTIONS))
        if repeated:
            raise ValueError(f"VLLMEngine: llm_kwargs may not set {', '.join(repeated)}; use VLLMEngine's own options")
        self.name = str(model)
        self.entropy_top_k = entropy_top_k
        self._dtype = dtype
        if llm is None or sampling_params is None:
            vllm = import_vllm()
            sampling_params = sampling_params or vllm.SamplingParams
            if llm is None:
                llm = vllm.LLM(
                    model=resolve_model(model),
                    dtype=dtype,
                    seed=seed,
                    gpu_memory_utilization=gpu_memory_utilization,
                    enable_prefix_caching=True,
                    **dict(llm_kwargs or {}),
                )
        self._llm: Any = llm
        self._make_params = sampling_params
        self._tokenizer = llm.get_tokenizer()
        self._model_config = _model_config(llm)
        self._facts: ModelFacts | None = None
        max_logprobs = getattr(self._model_config, "max_logprobs", None)
        if entropy_top_k is not None and isinstance(max_logprobs, int) and 0 <= max_logprobs < entropy_top_k:
            raise ValueError(
                f"VLLMEngine: entropy_top_k={entropy_top_k} exceeds vLLM's max_logprobs={max_logprobs}; "
                "raise it with llm_kwargs={'max_logprobs': ...}"
            )
        self._batcher: MicroBatcher[_Job] = MicroBatcher(
            self._run_batch, max_items=max_batch, max_tokens=max_batch_tokens, name="archon-vllm"
        )
        self._closed = False

    @property
    def facts(self) -> ModelFacts:
        """The model's architecture facts, read from the Hugging Face config vLLM loaded.

        Raises:
            EngineError: The config lacks what the cost model needs.
        """
        if self._facts is None:
            config = _config_dict(getattr(self._model_config, "hf_config", None))
            try:
                self._facts = ModelFacts.from_config(config, name=self.name, dtype=self._facts_dtype())
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
                raise EngineError(f"{self.name}: cannot read model facts from its config: {_one_line(exc)}") from exc
        return self._facts

    @property
    def max_model_len(self) -> int:
        """Longest sequence (prompt plus generated tokens) vLLM accepts for this model."""
        value = getattr(self._model_config, "max_model_len", None)
        return int(value) if value else self.facts.context_length

    async def generate(self, request: GenRequest) -> GenResult:
        """Sample ``request.n`` completions of ``request.prompt`` (batched with concurrent calls).

        Raises:
            RequestError: The prompt leaves no room to generate within ``max_model_len``, or vLLM
                rejected the request.
            UnsupportedFeatureError: The request asks for entropies and ``entropy_top_k`` is unset.
            EngineError: vLLM failed, or the engine is closed.
        """
        self._check_open()
        sampling_kwargs(request, entropy_top_k=self.entropy_top_k)  # refuse unsupported requests before queueing
        start = time.perf_counter()
        size = _size_hint(request.prompt) + request.n * request.max_tokens
        result: GenResult = await self._batcher.submit(_Job(request=request), size)
        return replace(result, seconds=time.perf_counter() - start)

    async def score(self, prompt: Prompt, continuations: Sequence[str]) -> ScoreResult:
        """Teacher-forced log-probabilities of each continuation's tokens after ``prompt``.

        Raises:
            RequestError: A prompt with a continuation does not fit in ``max_model_len``.
            EngineError: vLLM failed, or the engine is closed.
        """
        self._check_open()
        if isinstance(continuations, str):
            raise RequestError("score: continuations must be a sequence of strings, got one string")
        conts = tuple(continuations)
        if not conts:
            return ScoreResult(logprobs=(), token_ids=(), model=self.name)
        prompt = GenRequest(prompt).prompt  # validated and frozen like a generation prompt
        size = sum(_size_hint(prompt) + len(c) for c in conts)
        return await self._batcher.submit(_Job(prompt=prompt, continuations=conts), size)

    async def aclose(self) -> None:
        """Stop the batcher's worker thread; later calls raise. vLLM's GPU memory goes with the engine object."""
        self._closed = True
        self._batcher.close()

    # ---- the worker thread -------------------------------------------------------------------

    def _run_batch(self, jobs: Sequence[_Job]) -> list[Any]:
        """Prepare every job, run all of them in one ``llm.generate`` call, read the outputs back."""
        results: list[Any] = [None] * len(jobs)
        ready: list[tuple[int, _Prepared]] = []
        for i, job in enumerate(jobs):
            try:
                ready.append((i, self._prepare(job)))
            except Exception as exc:
                results[i] = _as_archon_error(exc)
        try:
            outputs = self._llm_generate([p for _, p in ready])
        except Exception as exc:
            if len(ready) == 1:
                results[ready[0][0]] = _as_archon_error(exc)
                return results
            for i, prepared in ready:  # isolate the request that broke the batch
                results[i] = self._run_alone(prepared)
            return results
        for (i, _), value in zip(ready, self._split(outputs, [p for _, p in ready]), strict=True):
            results[i] = value
        return results

    def _run_alone(self, prepared: _Prepared) -> Any:
        try:
            outputs = self._llm_generate([prepared])
        except Exception as exc:
            return _as_archon_error(exc)
        return self._split(outputs, [prepared])[0]

    def _llm_generate(self, prepared: list[_Prepared]) -> list[Any]:
        prompts = [x for p in prepared for x in p.prompts]
        if not prompts:
            return []
        params = [x for p in prepared for x in p.params]
        outputs = list(self._llm.generate(prompts, sampling_params=params, use_tqdm=False))
        if len(outputs) != len(prompts):
            raise EngineError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        return outputs

    @staticmethod
    def _split(outputs: list[Any], prepared: list[_Prepared]) -> list[Any]:
        values: list[Any] = []
        at = 0
        for p in prepared:
            mine = outputs[at : at + len(p.prompts)]
            at += len(p.prompts)
            try:
                values.append(p.finish(mine))
            except Exception as exc:
                values.append(_as_archon_error(exc))
        return values

    def _prepare(self, job: _Job) -> _Prepared:
        if job.request is not None:
            return self._prepare_generate(job.request)
        assert job.prompt is not None
        return self._prepare_score(job.prompt, job.continuations)

    def _prepare_generate(self, request: GenRequest) -> _Prepared:
        ids = self._prompt_ids(request.prompt)
        if not ids:
            raise RequestError("GenRequest.prompt: tokenizes to no tokens; the model needs at least one")
        if len(ids) >= self.max_model_len:
            raise RequestError(
                f"GenRequest.prompt: {len(ids)} tokens leave no room to generate within the model's "
                f"max_model_len of {self.max_model_len} tokens"
            )
        params = self._make_params(**sampling_kwargs(request, entropy_top_k=self.entropy_top_k))

        def finish(outputs: Sequence[Any]) -> GenResult:
            return result_from_output(request, outputs[0], model=self.name)

        return _Prepared([{"prompt_token_ids": ids}], [params], finish)

    def _prepare_score(self, prompt: Prompt, continuations: Sequence[str]) -> _Prepared:
        head = self._prompt_ids(prompt)
        if not head:
            raise RequestError("score: the prompt tokenizes to no tokens; the first token has no context to score it")
        tails = [list(self._tokenizer.encode(c, add_special_tokens=False)) if c else [] for c in continuations]
        scored = [i for i, tail in enumerate(tails) if tail]
        for i in scored:
            if len(head) + len(tails[i]) >= self.max_model_len:
                raise RequestError(
                    f"score: prompt + continuations[{i}] is {len(head) + len(tails[i])} tokens, over the "
                    f"model's max_model_len of {self.max_model_len} tokens"
                )
        prompts = [{"prompt_token_ids": head + tails[i]} for i in scored]
        params = [self._make_params(**score_kwargs()) for _ in scored]

        def finish(outputs: Sequence[Any]) -> ScoreResult:
            logprobs: list[tuple[float, ...]] = [() for _ in tails]
            usage = Usage()
            for i, out in zip(scored, outputs, strict=True):
                logprobs[i] = continuation_logprobs(out, len(head))
                n = len(out.prompt_token_ids or ())
                cached = min(int(getattr(out, "num_cached_tokens", None) or 0), n)
                usage += Usage(n, cached, sum(len(o.token_ids) for o in out.outputs))
            return ScoreResult(
                logprobs=tuple(logprobs), token_ids=tuple(tuple(t) for t in tails), usage=usage, model=self.name
            )

        return _Prepared(prompts, params, finish)

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt, tokenized as the module notes say; out-of-vocabulary ids are refused."""
        kind = prompt_kind(prompt)
        if kind == "tokens":
            ids = [int(t) for t in prompt]  # type: ignore[union-attr]
            top = _max_token_id(self._tokenizer)
            if top is not None and max(ids) > top:
                raise RequestError(f"GenRequest.prompt: token id {max(ids)} is outside the vocabulary (ids 0..{top})")
            return ids
        if kind == "messages":
            try:
                text = self._tokenizer.apply_chat_template(
                    [dict(m) for m in prompt],  # type: ignore[arg-type, union-attr]
                    add_generation_prompt=True,
                    tokenize=False,
                )
            except ValueError as exc:
                raise RequestError(f"GenRequest.prompt: cannot apply the chat template: {_one_line(exc)}") from exc
            return list(self._tokenizer.encode(text, add_special_tokens=False))
        return list(self._tokenizer.encode(prompt))

    def _facts_dtype(self) -> str | None:
        if self._dtype != "auto":
            return self._dtype
        loaded = getattr(self._model_config, "dtype", None)
        return str(loaded).replace("torch.", "") if loaded is not None else None

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError(f"VLLMEngine {self.name!r} is closed")


def _finish(reason: str | None, stop_reason: int | str | None) -> tuple[FinishReason, str | None]:
    if reason == "length":
        return "length", None
    if reason == "stop":
        if isinstance(stop_reason, str):
            return "stop", stop_reason
        return "eos", None
    raise EngineError(f"vLLM ended a completion with finish_reason={reason!r}")


def _value(entry: Any) -> float:
    """A ``Logprob`` (or a bare float, as some releases' flat formats give) as a float."""
    return float(getattr(entry, "logprob", entry))


def _logprob_of(step: Mapping[int, Any] | None, token: int) -> float:
    if not step or token not in step:
        raise EngineError(f"vLLM returned no log-probability for token {token}")
    return _value(step[token])


def _model_config(llm: Any) -> Any:
    engine = getattr(llm, "llm_engine", None)
    config = getattr(engine, "model_config", None)
    if config is None:
        config = getattr(llm, "model_config", None)
    return config


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if callable(getattr(config, "to_dict", None)):
        return dict(config.to_dict())
    return dict(vars(config))


def _max_token_id(tokenizer: Any) -> int | None:
    top = getattr(tokenizer, "max_token_id", None)
    if isinstance(top, int):
        return top
    try:
        return len(tokenizer) - 1
    except TypeError:
        return None


def _size_hint(prompt: Prompt) -> int:
    """A cheap upper-bound guess of a prompt's tokens, for the batcher (characters for text)."""
    if isinstance(prompt, str):
        return len(prompt)
    if prompt_kind(prompt) == "tokens":
        return len(prompt)
    return sum(len(m["content"]) + 8 for m in prompt)  # type: ignore[index]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _as_archon_error(exc: Exception) -> Exception:
    """Keep the project's errors; vLLM's validation errors become RequestError, the rest EngineError."""
    if isinstance(exc, RequestError | UnsupportedFeatureError | EngineError):
        return exc
    if isinstance(exc, ValueError | TypeError):
        error: Exception = RequestError(f"vLLM rejected the request: {_one_line(exc)}")
    else:
        error = EngineError(f"vLLM failed: {type(exc).__name__}: {_one_line(exc)}")
    error.__cause__ = exc
    return error


__all__ = [
    "INSTALL_HINT",
    "VLLMEngine",
    "completion_from_output",
    "continuation_logprobs",
    "entropy_lower_bound",
    "import_vllm",
    "result_from_output",
    "sampling_kwargs",
    "score_kwargs",
]

"""The batched transformers backend, on CPU and CUDA.

``await engine.generate(request)`` from many tasks at once: the :class:`~samplers.batcher.MicroBatcher`
collects the requests, and one worker thread serves them together:

1. **Prefill** every distinct prompt once (the ``n`` samples of a prompt, and identical prompts of
   different requests, share it), in chunks of left-padded rows. A prompt that continues an earlier
   one (the next step of a beam or particle) starts from the KV of the longest cached prefix: the
   chunk's rows are laid out ``[pad][cached prefix][pad][new tokens]`` with explicit position ids, so
   only the new tokens are computed. Usage reports the reused tokens as ``cached_tokens``.
2. **Decode** all samples of all requests in one batch: each prompt's KV is expanded (copied, not
   recomputed) to its ``n`` rows; every step runs one forward pass of one token per live row, then
   picks each row's token with its own temperature, top-p, top-k and random stream
   (:mod:`samplers.sampling`, :mod:`samplers.streams`). Rows that finish (EOS, a stop string,
   ``max_tokens``, the context) leave the batch.
3. **Cache** each prompt's KV and, for completions that ended at a stop string (a step that will be
   continued), the KV of prompt + step, in a bounded :class:`~archon.core.prefix_cache.PrefixCache`.

Greedy decoding equals ``model.generate(do_sample=False)`` token for token (a test checks it). Sample
``i`` of a request seeded with ``s`` draws from the stream ``stream_key(s, i)``: the same tokens
whatever ``n`` is (for ``n > i``) and whatever else shares its batch (up to floating-point rounding of
batched matrix products, which flips a token only when a uniform falls that close to a boundary of the
cumulative distribution: rarely); :attr:`TransformersEngine.stable_samples`
says so to :class:`~samplers.indexed.IndexSeededEngine`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from archon.core import (
    Completion,
    EngineBase,
    FinishReason,
    GenRequest,
    GenResult,
    ModelFacts,
    Prompt,
    RequestError,
    ScoreResult,
    Usage,
    prompt_kind,
)
from archon.core.batcher import MicroBatcher
from archon.core.kv_batch import KV, continuation_inputs, row_kv, stack_kv
from archon.core.models import resolve_model
from archon.core.prefix_cache import Entry, PrefixCache
from samplers import attention
from samplers.sampling import RowParams, choose, log_softmax_and_entropy
from samplers.stops import find_stop
from samplers.streams import random_keys, stream_key, uniforms

_COMPACT_EVERY = 4  # finished rows leave the decode batch once they are 1/4 of it (measured flat for 3-8)
_ENCODED_PROMPTS = 4096  # prompts whose token ids encode() remembers
"""Per layer, keys and values of one sequence: ``[kv_heads, tokens, head_dim]`` each."""


@dataclass
class EngineStats:
    """What an engine computed: tokens prefilled (cached ones excluded), decode steps, tokens chosen, forward passes."""

    prefill_tokens: int = 0
    decode_steps: int = 0
    decoded_tokens: int = 0
    forward_passes: int = 0
    compute_seconds: float = 0.0


@dataclass
class _Gen:
    request: GenRequest
    ids: tuple[int, ...]
    start: float
    first: int = 0  # the index of its first sample (its rows draw from streams first, first + 1 ...)


@dataclass
class _Score:
    prompt_ids: tuple[int, ...]
    conts: list[tuple[int, ...]]
    start: float = 0.0


@dataclass
class _Seq:
    """One distinct sequence to prefill, and what the batch learned about it."""

    ids: tuple[int, ...]
    keep: int = 1  # how many final positions' logits are needed
    cached: int = 0  # leading tokens whose KV is reused, not computed
    source: KV | None = None  # where the reused KV comes from
    entry: Entry | None = None  # the prefix-cache entry it came from, if any
    kv: KV = field(default_factory=list)
    logits: torch.Tensor | None = None


@dataclass
class _Row:
    """One sample being decoded."""

    work: int  # index of its _Gen in the batch
    seq: _Seq
    key: int  # its random stream (samplers.streams)
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    finish: FinishReason | None = None
    stop_str: str | None = None
    kept: bool = False  # its KV went to the prefix cache
    stopped_unsure: bool = False  # it ended at exit_entropy_above (before choosing: every token of it was fed)


class TransformersEngine(EngineBase):
    r"""Batched generation and scoring with a Hugging Face causal LM.

    Args:
        model: An embedded model's name (``"tiny-l"``), a local model directory, a hub id, or a loaded
            ``PreTrainedModel`` (then pass ``tokenizer``).
        tokenizer: The tokenizer, when ``model`` is an object.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        dtype: ``"auto"`` (float32 on CPU, bfloat16 on CUDA when supported), ``"float32"``,
            ``"bfloat16"`` or ``"float16"``.
        name: The model's name in results and cost reports (default: what ``model`` was).
        max_batch: Most requests in one batch.
        kv_budget_mb: Memory for the KV cache of one decode batch; bounds the tokens
            (``(prompt + max_tokens) × n`` per request) batched together.
        prefill_chunk_tokens: Most (padded) tokens in one prefill forward pass; a longer prompt is prefilled
            in pieces of this size, each attending to the KV of those before.
        prefix_cache_mb: Memory for cached prefixes (``0`` turns the prefix cache off).
        seed: Seed of the random stream that requests without a ``seed`` draw from.
        attn_implementation: Passed to ``from_pretrained``; by default SDPA for prefill and
            :mod:`samplers.attention` for decode steps (``"eager"`` for FLOP counting).
        worker_thread: Compute on a worker thread so the event loop keeps running meanwhile. Off by
            default: on the CPU, torch work that hops between threads runs 2-3x slower (OpenMP).

    Attributes:
        stable_samples: ``True``: sample ``i`` of a seeded request does not depend on the request's ``n``,
            and :meth:`generate_from` draws any run of them (what :class:`~samplers.indexed.IndexSeededEngine` uses).

    Example:
        >>> import asyncio
        >>> engine = TransformersEngine("tiny-l")
        >>> question = [{"role": "user", "content": "Evaluate left to right: 2 + 3"}]
        >>> req = GenRequest(question, max_tokens=16, temperature=0, stop="\n")
        >>> result = asyncio.run(engine.generate(req))
        >>> result.completions[0].text
        '2 + 3 = 5'
        >>> engine.close()
    """

    stable_samples = True

    def __init__(
        self,
        model: str | Path | PreTrainedModel,
        *,
        tokenizer: Any = None,
        device: str = "cpu",
        dtype: str = "auto",
        name: str | None = None,
        max_batch: int = 4096,
        kv_budget_mb: float = 1024,
        prefill_chunk_tokens: int = 8192,
        prefix_cache_mb: float = 256,
        seed: int = 0,
        attn_implementation: str | None = None,
        worker_thread: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.model, self.tokenizer = _load(model, tokenizer, self.device, dtype, attn_implementation)
        self.name = name or (str(model) if isinstance(model, str | Path) else self.model.name_or_path)
        config = self.model.config
        self.dtype = self.model.dtype
        n_params = sum(p.numel() for p in self.model.parameters())
        self._facts = ModelFacts.from_config(
            config.to_dict(), name=self.name, parameters=n_params, dtype=str(self.dtype).replace("torch.", "")
        )
        self.context_length = self._facts.context_length
        gen_cfg = getattr(self.model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None) or self.tokenizer.eos_token_id
        self.eos_ids = frozenset(eos if isinstance(eos, list | tuple) else [eos] if eos is not None else [])
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else next(iter(self.eos_ids), 0))
        kv_bytes = self._facts.kv_bytes_per_token
        self.max_batch_tokens = max(self.context_length, int(kv_budget_mb * 2**20 / kv_bytes))
        self.prefill_chunk_tokens = max(1, prefill_chunk_tokens)
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * 2**20 / kv_bytes))
        self._generator = torch.Generator().manual_seed(seed)
        self._encoded: dict[tuple[str, str], tuple[int, ...]] = {}  # prompts' token ids, least recent first
        self._batcher: MicroBatcher[_Gen | _Score] = MicroBatcher(
            self._run_batch,
            max_items=max_batch,
            max_tokens=self.max_batch_tokens,
            threaded=worker_thread,
            name=f"engine-{self.name}",
        )
        self._lock = threading.Lock()
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # decode steps hand our own attention its boolean mask ready-made (skips transformers' mask building)
        self._mask_4d = getattr(self.model.config, "_attn_implementation", None) == attention.NAME
        self.usage = Usage()
        """Everything this engine has served so far."""
        self.stats = EngineStats()

    # ------------------------------------------------------------------ public API

    @property
    def facts(self) -> ModelFacts:
        """Architecture facts of the loaded model (parameters counted on the weights)."""
        return self._facts

    @property
    def batch_stats(self) -> Any:
        """The micro-batcher's counters (batches run, items, largest batch)."""
        return self._batcher.stats

    def encode(self, prompt: Prompt) -> tuple[int, ...]:
        """The token ids of a prompt (text with the tokenizer's special tokens, messages via the chat template)."""
        kind = prompt_kind(prompt)
        if kind == "tokens":
            ids = tuple(int(t) for t in prompt)  # type: ignore[union-attr]
            vocab = self._facts.vocab_size
            if max(ids) >= vocab:
                msg = f"token id {max(ids)} is outside {self.name}'s vocabulary of {vocab}"
                raise RequestError(f"GenRequest.prompt: {msg}")
            return ids
        key = (kind, prompt if kind == "text" else json.dumps(prompt, sort_keys=True, default=repr))
        with self._lock:
            ids = self._encoded.pop(key, None)  # type: ignore[arg-type]
            if ids is not None:
                self._encoded[key] = ids  # type: ignore[index]  # now the most recently used
                return ids
        if kind == "text":
            ids = tuple(self.tokenizer(prompt).input_ids)
        else:
            text = self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
            ids = tuple(self.tokenizer(text, add_special_tokens=False).input_ids)
        with self._lock:
            if len(self._encoded) >= _ENCODED_PROMPTS:
                del self._encoded[next(iter(self._encoded))]  # the least recently used
            self._encoded[key] = ids  # type: ignore[index]
        return ids

    async def generate(self, request: GenRequest) -> GenResult:
        """Sample ``request.n`` completions; concurrent calls are served in one batch."""
        return await self.generate_from(request, 0)

    async def generate_from(self, request: GenRequest, first: int) -> GenResult:
        """Samples ``first`` to ``first + n - 1`` of ``request``: with a seed, those of any request for more.

        ``generate_from(r.replace(n=4), 4)`` gives the completions 4-7 of ``generate(r.replace(n=8))``
        without drawing the first four. Without a seed, ``first`` changes nothing.
        """
        if first < 0:
            raise RequestError(f"generate_from: first must be >= 0, got {first}")
        start = time.perf_counter()
        ids = self.encode(request.prompt)
        self._check_length(len(ids), "GenRequest.prompt")
        size = (len(ids) + self._room(len(ids), request.max_tokens)) * request.n
        return await self._batcher.submit(_Gen(request, ids, start, first), size)

    async def score(self, prompt: Prompt, continuations: Sequence[str]) -> ScoreResult:
        """Teacher-forced log-probabilities of each continuation's tokens after ``prompt``.

        Continuations are tokenized on their own (no special tokens) and appended to the prompt's
        tokens, so the scores are of exactly those tokens.
        """
        prompt_ids = self.encode(prompt)
        self._check_length(len(prompt_ids), "score prompt", generating=False)
        conts = [tuple(self.tokenizer(c, add_special_tokens=False).input_ids) for c in continuations]
        for i, c in enumerate(conts):
            self._check_length(len(prompt_ids) + len(c), f"score continuation {i}", generating=False)
        size = sum(len(prompt_ids) + len(c) for c in conts) or 1
        return await self._batcher.submit(_Score(prompt_ids, conts, time.perf_counter()), size)

    async def aclose(self) -> None:
        """Release the worker thread and the prefix cache."""
        self.close()

    def close(self) -> None:
        """Release the worker thread and the prefix cache (synchronous form of :meth:`aclose`)."""
        self._batcher.close()
        self.prefix_cache.clear()

    def _check_length(self, n: int, what: str, *, generating: bool = True) -> None:
        if n == 0:  # e.g. "" with a tokenizer that adds no BOS: no logits to start from
            raise RequestError(f"{what}: no tokens (an empty prompt has nothing to condition on)")
        if n > self.context_length - (1 if generating else 0):  # scoring may fill the context
            why = " (and at least one must be left to generate)" if generating else ""
            raise RequestError(f"{what}: {n} tokens, but {self.name}'s context is {self.context_length} tokens{why}")

    def _room(self, prompt_len: int, max_tokens: int) -> int:
        """Most tokens a completion of a ``prompt_len``-token prompt can have: ``max_tokens`` or the context left."""
        return max(1, min(max_tokens, self.context_length - prompt_len))

    # ------------------------------------------------------------------ the batch

    def _run_batch(self, items: Sequence[_Gen | _Score]) -> list[Any]:
        """Serve a batch; a failure is retried request by request so it fails alone."""
        try:
            start = time.perf_counter()
            with torch.inference_mode():
                results = self._serve(items)
            end = time.perf_counter()
            elapsed = end - start
            self.stats.compute_seconds += elapsed
            # counted once the whole batch succeeded; a request retried alone after a failed batch may find
            # its prompt in the prefix cache (the failed attempt put it there) and report it as cached
            total = sum((r.usage for r in results), Usage())
            with self._lock:
                self.usage = self.usage + total
            return _share_time(results, elapsed, [end - it.start for it in items])
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            return [self._run_batch([item])[0] for item in items]

    def _serve(self, items: Sequence[_Gen | _Score]) -> list[Any]:
        gens = [(i, w) for i, w in enumerate(items) if isinstance(w, _Gen)]
        scores = [(i, w) for i, w in enumerate(items) if isinstance(w, _Score)]
        seqs: dict[tuple[int, ...], _Seq] = {}
        for _, w in gens:
            seqs.setdefault(w.ids, _Seq(w.ids))
        for _, w in scores:
            seqs.setdefault(w.prompt_ids, _Seq(w.prompt_ids))
        self._prefill(list(seqs.values()))
        out: list[Any] = [None] * len(items)
        if scores:
            scored = []
            for _, w in scores:
                p = seqs[w.prompt_ids]
                for c in w.conts:
                    scored.append(_Seq(w.prompt_ids + c, keep=len(c), cached=len(p.ids), source=p.kv))
            self._prefill([s for s in scored if s.keep])
            it = iter(scored)
            for i, w in scores:
                out[i] = self._score_result(w, [next(it) for _ in w.conts], seqs[w.prompt_ids])
        if gens:
            for (i, _), result in zip(gens, self._decode([w for _, w in gens], seqs), strict=True):
                out[i] = result
        return out

    # ------------------------------------------------------------------ prefill

    def _prefill(self, seqs: list[_Seq]) -> None:
        """Compute the KV (and final logits) of every sequence, reusing cached prefixes."""
        for s in seqs:
            if s.source is None:
                n, entry = self.prefix_cache.lookup(s.ids, max_len=len(s.ids) - s.keep)
                s.cached, s.entry, s.source = n, entry, entry.payload if entry else None
        fits = []
        for s in seqs:
            if len(s.ids) - s.cached > self.prefill_chunk_tokens:
                self._prefill_pieces(s)
            else:
                fits.append(s)
        order = sorted(fits, key=lambda s: (s.cached, len(s.ids) - s.cached))
        chunk: list[_Seq] = []
        for s in order:
            trial = [*chunk, s]
            padded = len(trial) * (max(x.cached for x in trial) + max(len(x.ids) - x.cached for x in trial))
            if chunk and padded > self.prefill_chunk_tokens:
                self._prefill_chunk(chunk)
                chunk = []
            chunk.append(s)
        if chunk:
            self._prefill_chunk(chunk)
        for s in seqs:
            if self.prefix_cache.accepts(len(s.ids)):
                extends = s.entry if s.entry is not None and s.cached == len(s.entry.tokens) else None
                self.prefix_cache.insert(s.ids, _clone(s.kv), extends=extends)

    def _prefill_pieces(self, s: _Seq) -> None:
        """Prefill a sequence with more new tokens than a chunk holds: in pieces, each continuing the last's KV.

        The last piece holds the ``keep`` positions whose logits are needed (all of them, if they alone exceed
        a chunk). ``s.cached`` keeps counting only the tokens reused from the prefix cache.
        """
        done, source = s.cached, s.source
        last = max(done, len(s.ids) - max(s.keep, self.prefill_chunk_tokens))
        while done < last:
            end = min(done + self.prefill_chunk_tokens, last)
            part = _Seq(s.ids[:end], cached=done, source=source)
            self._prefill_chunk([part])
            done, source = end, part.kv
        final = _Seq(s.ids, keep=s.keep, cached=done, source=source)
        self._prefill_chunk([final])
        s.kv, s.logits = final.kv, final.logits

    def _prefill_chunk(self, chunk: list[_Seq]) -> None:
        dev = self.device
        ids, pos, mask, c_max, s_max = continuation_inputs([(s.ids, s.cached) for s in chunk], self.pad_id)
        cache = DynamicCache()
        if c_max:
            prefixes = [_slice(s.source, s.cached) if s.source else None for s in chunk]
            cache = _stack(prefixes, [s.cached for s in chunk], c_max, self._facts, self.dtype, dev)
        keep = max(s.keep for s in chunk)
        self.stats.prefill_tokens += sum(len(s.ids) - s.cached for s in chunk)
        self.stats.forward_passes += 1
        out = self.model(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            position_ids=pos.to(dev),
            use_cache=True,
            logits_to_keep=keep,
            **{self._cache_arg: cache},
        )
        logits = out.logits.float()
        for r, s in enumerate(chunk):
            s.kv = row_kv(cache.layers, r, c_max + s_max - (len(s.ids) - s.cached), s.source, s.cached)
            s.logits = logits[r, keep - s.keep :]

    # ------------------------------------------------------------------ decode

    def _decode(self, works: list[_Gen], seqs: dict[tuple[int, ...], _Seq]) -> list[GenResult]:
        rows: list[_Row] = []
        for wi, w in enumerate(works):
            seed, n = w.request.seed, w.request.n
            if seed is None:
                keys = random_keys(self._generator, n)
            else:
                keys = [stream_key(seed, w.first + j) for j in range(n)]
            rows += [_Row(wi, seqs[w.ids], key) for key in keys]
        by_work: dict[int, list[_Row]] = {}
        for r in rows:
            by_work.setdefault(r.work, []).append(r)
        for group in self._decode_groups(works):
            self._decode_rows(works, [r for wi in sorted(group) for r in by_work[wi]])
        results = []
        for wi, w in enumerate(works):
            mine = by_work[wi]
            s = seqs[w.ids]
            usage = Usage(len(w.ids), s.cached, sum(len(r.tokens) for r in mine))
            comps = tuple(self._completion(r, w.request) for r in mine)
            results.append(GenResult(w.request, comps, usage, self.name, time.perf_counter() - w.start))
            s.cached = len(s.ids)  # a later request with the same prompt computed none of it
        return results

    def _decode_groups(self, works: list[_Gen]) -> list[set[int]]:
        """Split the works so that each decode cache, rows x (longest prompt + most room), fits the KV budget.

        The batcher sums each request's own tokens; left-padding to the longest prompt can multiply that. A
        request's rows stay together (they share a prefill); one that alone exceeds the budget runs alone.
        """
        groups: list[set[int]] = []
        group: set[int] = set()
        rows = room = 0
        for i in sorted(range(len(works)), key=lambda i: len(works[i].ids)):  # the longest prompt so far: this one
            w = works[i]
            r = self._room(len(w.ids), w.request.max_tokens)
            if group and (rows + w.request.n) * (len(w.ids) + max(room, r)) > self.max_batch_tokens:
                groups.append(group)
                group, rows, room = set(), 0, 0
            group.add(i)
            rows, room = rows + w.request.n, max(room, r)
        if group:
            groups.append(group)
        return groups

    def _decode_rows(self, works: list[_Gen], rows: list[_Row]) -> None:
        dev = self.device
        lengths = [len(r.seq.ids) for r in rows]
        t0 = max(lengths)
        room = max(self._room(n, works[r.work].request.max_tokens) for r, n in zip(rows, lengths, strict=True))
        cache = _stack([r.seq.kv for r in rows], lengths, t0, self._facts, self.dtype, dev, share=True, reserve=room)
        mask = torch.zeros((len(rows), t0), dtype=torch.bool)
        for i, n in enumerate(lengths):
            mask[i, t0 - n :] = True
        mask = mask.to(dev)
        unpadded = [n == t0 for n in lengths]
        positions = torch.tensor(lengths, dtype=torch.long)
        reqs = [works[r.work].request for r in rows]
        params = RowParams(
            torch.tensor([q.temperature for q in reqs], dtype=torch.float32, device=dev),
            torch.tensor([q.top_p for q in reqs], dtype=torch.float32, device=dev),
            torch.tensor([q.top_k for q in reqs], dtype=torch.long, device=dev),
        )
        keys = torch.tensor([r.key for r in rows], dtype=torch.long, device=dev)
        logits = torch.stack([r.seq.logits[-1] for r in rows])  # type: ignore[index]
        live = list(range(len(rows)))  # batch position -> row index
        step = 0
        while True:
            self._step(rows, live, reqs, logits, params, uniforms(keys, step), positions)
            done = [b for b, ri in enumerate(live) if rows[ri].finish is not None]
            if len(done) == len(live):
                for b, ri in enumerate(live):
                    self._cache_completion(rows[ri], cache, b, t0)
                break
            if done and (len(done) * _COMPACT_EVERY >= len(live) or len(live) - len(done) <= 4):
                for b in done:
                    self._cache_completion(rows[live[b]], cache, b, t0)
                finished = set(done)
                keep = [b for b in range(len(live)) if b not in finished]
                idx = torch.tensor(keep, dtype=torch.long)
                cache.batch_select_indices(idx.to(dev))
                mask = mask[idx.to(dev)]
                params = params.select(idx.to(dev))
                keys = keys[idx.to(dev)]
                positions = positions[idx]
                live = [live[b] for b in keep]
            flags = [rows[ri].finish is None for ri in live]
            last = [rows[ri].tokens[-1] if rows[ri].finish is None else self.pad_id for ri in live]
            mask = torch.cat([mask, torch.tensor(flags, device=dev).unsqueeze(1)], dim=1)
            # no padding and no finished row: no mask at all (the attention then skips masking)
            dense = self._mask_4d and all(flags) and all(unpadded[ri] for ri in live)
            self.stats.decode_steps += 1
            self.stats.forward_passes += 1
            out = self.model(
                input_ids=torch.tensor(last, dtype=torch.long, device=dev).unsqueeze(1),
                attention_mask=None if dense else mask[:, None, None, :] if self._mask_4d else mask,
                position_ids=positions.to(dev).unsqueeze(1),
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_arg: cache},
            )
            logits = out.logits[:, -1].float()
            # a live row is never fed past ctx - 1; finished rows waiting to leave the batch (fed padding)
            # must not be either: models with learned positions (GPT-2) have no embedding there
            positions = (positions + 1).clamp_(max=self.context_length - 1)
            step += 1

    def _step(
        self,
        rows: list[_Row],
        live: list[int],
        reqs: list[GenRequest],
        logits: torch.Tensor,
        params: RowParams,
        drawn: torch.Tensor,
        positions: torch.Tensor,
    ) -> None:
        """Choose the next token of every live row (``drawn``: their uniforms) and decide which rows finish."""
        chosen = choose(logits, params, drawn)
        tokens = chosen.tolist()
        lps: list[float] | None = None
        ents: list[float] | None = None
        confs: list[float] | None = None
        if any(reqs[ri].logprobs or reqs[ri].entropies or reqs[ri].entropy_exits for ri in live):
            logp, ent = log_softmax_and_entropy(logits)
            lps = logp.gather(1, chosen.unsqueeze(1)).squeeze(1).tolist()
            ents = ent.tolist()
        top = max((reqs[ri].confidences for ri in live), default=0)
        if top:
            confs = _confidences(logits, [reqs[ri].confidences for ri in live], top)
        pos = positions.tolist()
        eos, ctx = self.eos_ids, self.context_length
        appended = 0
        for b, ri in enumerate(live):
            row = rows[ri]
            if row.finish is not None:
                continue
            req = reqs[ri]
            if ents is not None and req.exit_entropy_above is not None and _unsure(row, ents[b], req):
                row.finish, row.stopped_unsure = "switch", True  # hand over before choosing a token
                continue
            tok = tokens[b]
            row.tokens.append(tok)
            appended += 1
            if lps is not None and req.logprobs:
                row.logprobs.append(lps[b])
            if ents is not None and (req.entropies or req.entropy_exits):
                row.entropies.append(ents[b])
            if confs is not None and req.confidences:
                row.confidences.append(confs[b])
            if tok in eos:
                row.finish = "eos"
            elif req.stop and self._hit_stop(row, req):
                row.finish = "stop"
            elif len(row.tokens) >= req.max_tokens or pos[b] + 1 >= ctx:
                row.finish = "length"
            elif req.exit_calm_below is not None and _calm(row, req):
                row.finish = "switch"
            elif req.exit_confidence_below is not None and _unconfident(row, req):
                row.finish = "low_confidence"
        self.stats.decoded_tokens += appended

    def _hit_stop(self, row: _Row, req: GenRequest) -> bool:
        width = max(len(s) for s in req.stop) + 8
        tail = self.tokenizer.decode(row.tokens[-width:], skip_special_tokens=True)
        if find_stop(tail, req.stop) is None:
            return False
        hit = find_stop(self.tokenizer.decode(row.tokens, skip_special_tokens=True), req.stop)
        if hit is None:
            return False
        row.stop_str = hit[1]
        return True

    def _cache_completion(self, row: _Row, cache: DynamicCache, b: int, t0: int) -> None:
        """Keep the KV of prompt + step for a completion that will be continued.

        It ended at a stop string or after a token at ``exit_calm_below`` (its last token not fed yet), or at
        ``exit_entropy_above`` (before choosing a token: every token of it fed).
        """
        if row.kept or row.finish not in ("stop", "switch"):
            return
        n_prompt, n_fed = len(row.seq.ids), len(row.tokens) - (0 if row.stopped_unsure else 1)
        if n_fed <= 0 or not self.prefix_cache.accepts(n_prompt + n_fed):
            return
        row.kept = True
        lo, hi = t0 - n_prompt, t0 + n_fed
        kv = [(layer.keys[b, :, lo:hi].clone(), layer.values[b, :, lo:hi].clone()) for layer in cache.layers]
        fed = row.seq.ids + tuple(row.tokens[:n_fed])
        self.prefix_cache.insert(fed, kv, extends=self.prefix_cache.get(row.seq.ids))

    def _completion(self, row: _Row, req: GenRequest) -> Completion:
        text = self.tokenizer.decode(row.tokens, skip_special_tokens=True)
        finish, stop_str = row.finish or "length", row.stop_str
        if req.stop:
            hit = find_stop(text, req.stop)
            if hit is not None:
                i, stop_str = hit
                text = text[: i + len(stop_str)] if req.include_stop else text[:i]
                finish = "stop"
        return Completion(
            text=text,
            token_ids=tuple(row.tokens),
            logprobs=tuple(row.logprobs) if req.logprobs else None,
            entropies=tuple(row.entropies) if req.entropies else None,
            finish_reason=finish,
            stop_str=stop_str if finish == "stop" else None,
            confidences=tuple(row.confidences) if req.confidences else None,
        )

    def _score_result(self, work: _Score, scored: list[_Seq], prompt: _Seq) -> ScoreResult:
        assert prompt.logits is not None
        first = torch.log_softmax(prompt.logits[-1], dim=-1)
        out = []
        for s, cont in zip(scored, work.conts, strict=True):
            if not cont:
                out.append(())
                continue
            assert s.logits is not None
            rest = torch.log_softmax(s.logits[: len(cont) - 1], dim=-1)
            idx = torch.tensor(cont[1:], dtype=torch.long, device=rest.device).unsqueeze(-1)
            out.append((float(first[cont[0]]), *rest.gather(-1, idx).squeeze(-1).tolist()))
        total = len(work.prompt_ids) + sum(len(c) for c in work.conts)
        usage = Usage(prompt_tokens=total, cached_tokens=prompt.cached)
        prompt.cached = len(prompt.ids)  # a later request with the same prompt computed none of it
        return ScoreResult(tuple(out), tuple(work.conts), usage, self.name, time.perf_counter() - work.start)


# ---------------------------------------------------------------------- helpers


def _unsure(row: _Row, entropy: float, req: GenRequest) -> bool:
    """``exit_entropy_above``: the mean entropy of this step and the ``w - 1`` before it exceeds ``tau``."""
    tau, w = req.exit_entropy_above  # type: ignore[misc]
    window = [*row.entropies[len(row.entropies) - (w - 1) :], entropy] if w > 1 else [entropy]
    return sum(window) / len(window) > tau


def _confidences(logits: torch.Tensor, ks: list[int], top: int) -> list[float]:
    """DeepConf's token confidence of every row: minus the mean log-probability of its ``k`` likeliest tokens."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    best = logp.topk(min(top, logp.shape[-1]), dim=-1).values  # [rows, top], descending
    csum = best.cumsum(-1)
    idx = torch.tensor([max(1, min(k, best.shape[-1])) - 1 for k in ks], device=best.device)
    means = csum.gather(1, idx.unsqueeze(1)).squeeze(1) / (idx + 1).to(csum.dtype)
    return (-means).tolist()


def _unconfident(row: _Row, req: GenRequest) -> bool:
    """``exit_confidence_below``: the mean confidence of the last ``w`` tokens is below the threshold."""
    threshold, w = req.exit_confidence_below  # type: ignore[misc]
    return len(row.confidences) >= w and sum(row.confidences[-w:]) / w < threshold


def _calm(row: _Row, req: GenRequest) -> bool:
    """``exit_calm_below``: the last ``d`` steps' entropies were all below ``tau``."""
    tau, d = req.exit_calm_below  # type: ignore[misc]
    return len(row.entropies) >= d and all(e < tau for e in row.entropies[-d:])


def _share_time(results: list[Any], seconds: float, waited: list[float]) -> list[Any]:
    """Give each result its share of the batch's wall time, in proportion to its tokens.

    A request's tokens are the prompt tokens it computed plus the tokens it generated (a scoring
    call: the tokens it fed). ``waited``: each request's wall time from its call to the batch's end.
    """
    weights = []
    for r in results:
        u = getattr(r, "usage", None)
        weights.append(0 if u is None else max(1, u.computed_prompt_tokens + u.generated_tokens))
    total = sum(weights) or 1
    out = []
    for r, w, wall in zip(results, weights, waited, strict=True):
        out.append(dataclasses.replace(r, compute_seconds=seconds * w / total, seconds=wall) if w else r)
    return out


def _load(
    model: str | Path | PreTrainedModel, tokenizer: Any, device: torch.device, dtype: str, attn: str | None
) -> tuple[PreTrainedModel, Any]:
    torch_dtype = _dtype(dtype, device)
    if isinstance(model, PreTrainedModel):
        if tokenizer is None:
            raise RequestError("TransformersEngine: pass tokenizer= with a loaded model")
        if dtype == "auto":  # a loaded model keeps its own number format
            return model.to(device).eval(), tokenizer
        return model.to(device=device, dtype=torch_dtype).eval(), tokenizer
    where = resolve_model(model, check_hub=True)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "attn_implementation": attn or attention.register()}
    loaded = AutoModelForCausalLM.from_pretrained(where, **kwargs).to(device).eval()
    return loaded, tokenizer or AutoTokenizer.from_pretrained(where)


def _dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        value = getattr(torch, dtype)
    except AttributeError:
        value = None
    if not isinstance(value, torch.dtype):
        raise RequestError(f"TransformersEngine.dtype: unknown dtype {dtype!r} (auto, float32, bfloat16, float16)")
    return value


def _slice(kv: KV, n: int) -> KV:
    return [(k[:, :n], v[:, :n]) for k, v in kv]


def _clone(kv: KV) -> KV:
    return [(k.clone(), v.clone()) for k, v in kv]


def _stack(
    kvs: Sequence[KV | None],
    lengths: Sequence[int],
    width: int,
    facts: ModelFacts,
    dtype: torch.dtype,
    device: torch.device,
    *,
    share: bool = False,
    reserve: int = 0,
) -> DynamicCache:
    """A batch cache (:func:`~archon.core.kv_batch.stack_kv`), with room for ``reserve`` more tokens.

    The room lets decoding write in place instead of copying the whole cache every step.
    """
    shape = (facts.layers, facts.kv_heads, facts.head_dim)
    data = stack_kv(kvs, lengths, width, shape, dtype, device, share=share)
    if not reserve:
        return DynamicCache(data)
    cache = DynamicCache()
    cache.layers = [_GrowingLayer(k, v, reserve) for k, v in data]
    return cache


class _GrowingLayer(DynamicLayer):
    """A cache layer with preallocated room: ``update`` writes in place and returns views.

    transformers' ``DynamicLayer`` concatenates, copying the layer's whole cache at every decode
    step; for small models that copy, not the matrix products, dominated a decode step.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, reserve: int) -> None:
        super().__init__()
        self._length = keys.shape[-2]
        self._kbuf = _with_room(keys, reserve)
        self._vbuf = _with_room(values, reserve)
        self.device = keys.device
        self.is_initialized = True

    @property  # type: ignore[override]
    def keys(self) -> torch.Tensor:
        return self._kbuf[:, :, : self._length]

    @keys.setter
    def keys(self, value: torch.Tensor | None) -> None:
        if value is not None:
            self._kbuf, self._length = value, value.shape[-2]

    @property  # type: ignore[override]
    def values(self) -> torch.Tensor:
        return self._vbuf[:, :, : self._length]

    @values.setter
    def values(self, value: torch.Tensor | None) -> None:
        if value is not None:
            self._vbuf = value

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """Write the new tokens' keys and values after the cached ones."""
        n = key_states.shape[-2]
        if self._length + n > self._kbuf.shape[-2]:
            grow = max(n, self._kbuf.shape[-2])
            self._kbuf, self._vbuf = _with_room(self.keys, grow), _with_room(self.values, grow)
        self._kbuf[:, :, self._length : self._length + n] = key_states
        self._vbuf[:, :, self._length : self._length + n] = value_states
        self._length += n
        return self.keys, self.values

    def get_seq_length(self) -> int:
        """Tokens held."""
        return self._length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows ``indices`` (finished rows leave the batch); copies the filled part only."""
        room = self._kbuf.shape[-2] - self._length
        self._kbuf = _with_room(self.keys.index_select(0, indices), room)
        self._vbuf = _with_room(self.values.index_select(0, indices), room)


def _with_room(t: torch.Tensor, extra: int) -> torch.Tensor:
    shape = (*t.shape[:2], t.shape[2] + extra, t.shape[3])
    buf = torch.empty(shape, dtype=t.dtype, device=t.device)
    buf[:, :, : t.shape[2]] = t
    return buf

"""Learned reward models: outcome (a score per solution) and process (a score per step).

Any Hugging Face checkpoint with a classification head works (``...ForSequenceClassification`` for
outcome models, ``...ForTokenClassification`` for process models); how it is read is declared in
configuration — a ``reward_config.json`` next to the weights, or ``config=`` — never guessed from the
model's name:

==================  ===========================================================================
``kind``            ``process`` (read at every step delimiter) or ``outcome`` (read at the end)
``read``            ``head`` (a classification head's logits, the default) or ``teacher_forced``
                    (a causal LM's probability of the tokens as written; see below)
``prompt``          ``chat_template`` (question through the tokenizer's chat template, generation
                    prompt added) or ``text`` (the question as plain text, then a newline)
``step_delimiter``  the text that ends a step; one is appended after the last step
``score``           ``sigmoid`` (of the first logit) or ``softmax`` (probability of
                    ``positive_label``); ``probability`` for ``teacher_forced``
``isolated_pattern``  (``teacher_forced``) a regular expression with groups ``lhs`` and ``rhs``:
                    the ``rhs`` of a step that matches is checked after ``lhs`` alone
``steps``           (``teacher_forced``) ``local`` (a step's own probability, the default) or
                    ``prefix`` (the product up to it: the probability that every step so far is right)
``higher_is_better``  whether a higher score means a better solution
==================  ===========================================================================

A ``teacher_forced`` verifier is a causal LM (``...ForCausalLM``) read by teacher forcing, in two
kinds of forward pass. The *context* pass reads the question (as ``prompt`` says) and the solution,
its steps joined by ``step_delimiter``, then the eos token: a step's tokens are read there after the
question and the earlier steps (for a step that matches ``isolated_pattern``, only up to the end of
``lhs``; for any other step, the whole step and the delimiter or eos after it). The *isolated* pass
reads ``<bos> lhs rhs <eos>`` of each matching step alone: the tokens of ``rhs`` and the eos. A
step's score is the product of the probabilities of its read tokens, so it is low when an operand was
copied wrong (context) or a result computed wrong (isolated); a solution's score aggregates its steps
(``aggregation``; an outcome model: their product).

Calls from many problems are batched through the kernel's :class:`~archon.core.batcher.MicroBatcher`,
and :meth:`RewardModel.charged` charges them to a ledger like any model call.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from archon.core import Aggregation, Candidate, Problem, aggregate
from archon.core.batcher import MicroBatcher
from archon.core.models import resolve_model
from archon.core.prefix_cache import PrefixCache
from archon.core.prefixes import ComputedPrefixes
from budgets import Cost, CostModel, Ledger, Scope
from budgets.hardware import HardwareProfile


@dataclass(frozen=True, slots=True)
class RewardConfig:
    """How a reward model reads a solution (see the module's table)."""

    kind: Literal["process", "outcome"]
    read: Literal["head", "teacher_forced"] = "head"
    prompt: Literal["chat_template", "text"] = "chat_template"
    step_delimiter: str = "\n"
    score: Literal["sigmoid", "softmax", "probability"] = "sigmoid"
    positive_label: int = 1
    higher_is_better: bool = True
    isolated_pattern: str | None = None
    steps: Literal["local", "prefix"] = "local"

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "reward config") -> RewardConfig:
        """Read the known fields (descriptive extra fields are ignored); values are checked."""
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        if cfg.kind not in ("process", "outcome"):
            raise ValueError(f"{where}: kind must be 'process' or 'outcome', got {cfg.kind!r}")
        if cfg.prompt not in ("chat_template", "text"):
            raise ValueError(f"{where}: prompt must be 'chat_template' or 'text', got {cfg.prompt!r}")
        if str(cfg.score).startswith("sigmoid"):
            cfg = _replace(cfg, score="sigmoid")
        if cfg.read not in ("head", "teacher_forced"):
            raise ValueError(f"{where}: read must be 'head' or 'teacher_forced', got {cfg.read!r}")
        if cfg.read == "teacher_forced":
            if cfg.score != "probability":
                raise ValueError(f"{where}: a teacher_forced reading scores by 'probability', got {cfg.score!r}")
            if cfg.steps not in ("local", "prefix"):
                raise ValueError(f"{where}: steps must be 'local' or 'prefix', got {cfg.steps!r}")
            if cfg.isolated_pattern is not None:
                try:
                    groups = re.compile(cfg.isolated_pattern).groupindex
                except re.error as exc:
                    raise ValueError(f"{where}: isolated_pattern is not a regular expression: {exc}") from None
                if not {"lhs", "rhs"} <= set(groups):
                    raise ValueError(f"{where}: isolated_pattern must have the groups (?P<lhs>...) and (?P<rhs>...)")
        elif cfg.score not in ("sigmoid", "softmax"):
            raise ValueError(f"{where}: score must be 'sigmoid' or 'softmax', got {cfg.score!r}")
        if not cfg.step_delimiter:
            raise ValueError(f"{where}: step_delimiter must not be empty")
        return cfg


@dataclass(eq=False)
class _Item:
    """One forward pass: token ids, the positions read, and what is reused from earlier passes.

    ``cached`` leading positions take their KV from ``source`` (a cache entry, or an earlier item of
    the same call, whose ``payload`` is filled once it has run); reads before ``cached + 1`` take
    their value from it too. ``known`` holds the values of a pass already run (nothing computed).
    ``keep`` is how many leading tokens to keep in the cache afterwards (0: none).
    """

    ids: list[int]
    reads: list[int]
    cached: int = 0
    source: Any = None
    known: list[float] | None = None
    keep: int = 0
    payload: Any = None
    first: bool = False
    """Run before the other items of its call (a shared prompt the others continue)."""


@dataclass
class _Plan:
    """Forward passes for some candidates, and where each candidate's scores come from.

    ``steps[c][s]`` lists the (item, read) pairs of step ``s`` of candidate ``c`` (a teacher-forced
    reading), or ``steps`` is ``None`` when item ``c`` holds candidate ``c``'s scores.
    """

    items: list[_Item]
    steps: list[list[list[tuple[int, int]]]] | None = None
    charge: list[_Item] | None = None
    """The passes as charged, when they differ from ``items``: what a run of the problem alone computes."""


@dataclass
class _Computed:
    """What one run (one ledger) had a reward model compute for one problem: the passes and the kept KV."""

    passes: set[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=set)
    prefixes: ComputedPrefixes = field(default_factory=ComputedPrefixes)

    def add(self, items: Sequence[_Item]) -> None:
        """Record that ``items`` ran (or were taken from the memo) for this problem."""
        for it in items:
            self.passes.add(_key(it))
            if it.keep:
                self.prefixes.add(it.ids[: it.keep])


def _key(item: _Item) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(item.ids), tuple(item.reads)


def _distinct(items: Sequence[_Item]) -> dict[tuple[tuple[int, ...], tuple[int, ...]], _Item]:
    """The items with distinct encodings, by encoding, in first-seen order."""
    out: dict[tuple[tuple[int, ...], tuple[int, ...]], _Item] = {}
    for it in items:
        out.setdefault(_key(it), it)
    return out


class RewardModel:
    r"""A learned outcome or process reward model, batched across concurrent calls.

    Args:
        model: An embedded name (``tiny-prm``, ``tiny-orm``), a model directory or a hub id.
        config: How to read it (default: the model's ``reward_config.json``).
        aggregation: How a process model's step scores become one solution score in :meth:`score`.
        device: ``cpu``, ``cuda`` ...
        name: The verifier's name (scores are stored under it; default: the model's name).
        max_batch: Most candidates in one batch.
        chunk_tokens: Most (padded) tokens in one forward pass; a batch is split into chunks of
            similar lengths.
        incremental: Reuse what earlier passes computed (teacher-forced readings): a partial solution's
            new step is read after the cached KV of the question and its earlier steps, candidates
            that share only the question continue one pass of it, and a pass already run is not run
            again. Scores equal those from scratch; the ledger is charged for the tokens computed.
        kv_cache_mb: Memory for cached KV (least recently used entries are dropped beyond it).
        memo_size: Most passes whose results are remembered.

    Example:
        >>> import asyncio
        >>> from archon.core import Candidate, Problem
        >>> prm = RewardModel("tiny-prm")
        >>> p = Problem("a", "Evaluate left to right: 5 + 8 - 8")
        >>> good, bad = Candidate("5 + 8 = 13\n13 - 8 = 5\n#### 5"), Candidate("5 + 8 = 14\n14 - 8 = 6\n#### 6")
        >>> steps = asyncio.run(prm.score_steps(p, [good, bad]))
        >>> [len(s) for s in steps], steps[0][0] > steps[1][0]
        ([3, 3], True)
    """

    def __init__(
        self,
        model: str | Path = "tiny-prm",
        *,
        config: RewardConfig | dict[str, Any] | None = None,
        aggregation: Aggregation = "min",
        device: str = "cpu",
        name: str | None = None,
        max_batch: int = 256,
        chunk_tokens: int = 4096,
        incremental: bool = True,
        kv_cache_mb: float = 64.0,
        memo_size: int = 65536,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

        where = resolve_model(model, check_hub=True)
        self.config = self._read_config(where, config)
        if self.config.read == "teacher_forced":
            from transformers import AutoModelForCausalLM as auto
        elif self.config.kind == "process":
            auto = AutoModelForTokenClassification
        else:
            auto = AutoModelForSequenceClassification
        self.device = torch.device(device)
        self.model = auto.from_pretrained(where).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(where)
        self.name = name or str(model)
        self.higher_is_better = self.config.higher_is_better
        self.aggregation = aggregation
        self.chunk_tokens = chunk_tokens
        self.compute_seconds = 0.0
        """Time spent in forward passes (for measuring orchestration overhead)."""
        self.computed_tokens = 0
        """Tokens that went through the model (not those whose KV was reused)."""
        self._prompts: dict[str, str] = {}
        self._isolated = re.compile(self.config.isolated_pattern) if self.config.isolated_pattern else None
        self.cost = CostModel.from_config(self.model.config, name=self.name)
        self.incremental = incremental and self.config.read == "teacher_forced"
        self.memo_size = memo_size
        self._layers = int(self.model.config.num_hidden_layers)
        self._cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        kv_heads = getattr(self.model.config, "num_key_value_heads", None) or self.model.config.num_attention_heads
        head_dim = getattr(self.model.config, "head_dim", None) or (
            self.model.config.hidden_size // self.model.config.num_attention_heads
        )
        kv_bytes = 2 * self._layers * kv_heads * head_dim * 4
        self._kv_shape = (self._layers, int(kv_heads), int(head_dim))
        self._kv = PrefixCache(int(kv_cache_mb * 2**20 / kv_bytes) if self.incremental else 0, block=4)
        self._memo: OrderedDict[tuple[tuple[int, ...], tuple[int, ...]], list[float]] = OrderedDict()
        self._computed: weakref.WeakKeyDictionary[Ledger, dict[str, _Computed]] = weakref.WeakKeyDictionary()
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)
        self._batcher: MicroBatcher[_Item] = MicroBatcher(
            self._run_batch, max_items=max_batch, threaded=False, name=f"reward-{self.name}"
        )

    @staticmethod
    def _read_config(where: str, config: RewardConfig | dict[str, Any] | None) -> RewardConfig:
        if isinstance(config, RewardConfig):
            return config
        if config is not None:
            return RewardConfig.from_dict(dict(config), where="RewardModel.config")
        path = Path(where) / "reward_config.json"
        if not path.is_file():
            raise ValueError(
                f"RewardModel: {where} has no reward_config.json; pass config={{'kind': 'process' | 'outcome', ...}}"
            )
        return RewardConfig.from_dict(json.loads(path.read_text()), where=str(path))

    # ------------------------------------------------------------------ encoding

    def _prompt(self, problem: Problem) -> str:
        key = repr(problem.question)
        text = self._prompts.get(key)
        if text is None:
            if self.config.prompt == "chat_template":
                messages = problem.messages()
                text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            else:
                text = problem.messages()[-1]["content"] + "\n"
            if len(self._prompts) > 4096:
                self._prompts.clear()
            self._prompts[key] = text
        return text

    def encode(self, problem: Problem, candidate: Candidate) -> tuple[list[int], list[int]]:
        """Token ids of (question, solution) and the positions to read (every step's end, or the last token).

        For a ``teacher_forced`` reading: the context pass's ids and the positions of the tokens it reads.
        """
        if self.config.read == "teacher_forced":
            item = self.plan(problem, [candidate]).items[0]
            return list(item.ids), list(item.reads)
        return self.encode_many(problem, [candidate])[0]

    def encode_many(self, problem: Problem, candidates: Sequence[Candidate]) -> list[tuple[list[int], list[int]]]:
        """:meth:`encode` of each candidate, tokenized in one call (a solution sampled twice, once)."""
        if not candidates:
            return []
        steps = [tuple(c.steps(self.config.step_delimiter)) for c in candidates]
        distinct = list(dict.fromkeys(steps))
        encoded = dict(zip(distinct, self._encode_steps(self._prompt(problem), distinct), strict=True))
        return [(list(encoded[s][0]), list(encoded[s][1])) for s in steps]

    def plan(
        self,
        problem: Problem,
        candidates: Sequence[Candidate],
        *,
        reuse: bool | None = None,
        seen: _Computed | None = None,
    ) -> _Plan:
        """The forward passes that score ``candidates``, and how their reads make each candidate's step scores.

        With ``reuse`` (default: :attr:`incremental`), a teacher-forced plan takes what earlier calls
        computed: a pass run before is not run again, a context pass continues the cached KV of its
        longest computed prefix (the question and the earlier steps of a partial solution), and
        candidates that share only the question continue one pass of the question. With ``seen`` (what
        this run computed for this problem), the plan's ``charge`` is the same reuse limited to that:
        what the problem run alone would compute, whatever else ran in the process.
        """
        if self.config.read != "teacher_forced":
            return _Plan([_Item(*e) for e in self.encode_many(problem, candidates)])
        delimiter = self.config.step_delimiter
        steps = [(tuple(c.steps(delimiter)), bool(c.metadata.get("partial"))) for c in candidates]
        distinct = list(dict.fromkeys(steps))
        prompt = self._prompt(problem)
        matches = [[self._isolated.match(x) if self._isolated else None for x in s] for s, _ in distinct]
        texts = [prompt + delimiter.join(s) + (delimiter if part and s else "") for s, part in distinct]
        texts += [m.group("lhs") + m.group("rhs") for ms in matches for m in ms if m]
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)  # one call for all
        encoded = iter(zip(enc["input_ids"], enc["offset_mapping"], strict=True))
        contexts = [next(encoded) for _ in distinct]
        items: list[_Item] = []
        layouts = {
            key: self._encode_teacher_forced(len(prompt), key[0], ms, context, encoded, items, partial=key[1])
            for key, ms, context in zip(distinct, matches, contexts, strict=True)
        }
        charge = None
        if self.incremental if reuse is None else reuse:
            prompt_tokens = sum(1 for a, _ in contexts[0][1] if a < len(prompt)) if contexts else 0
            if seen is not None:
                copies = [_Item(list(it.ids), list(it.reads), keep=it.keep) for it in items]
                charge = self._reuse(copies, prompt_tokens, seen)
            items = self._reuse(items, prompt_tokens)
            for layout in layouts.values():  # the question's pass, if added first, shifts every item by one
                if items and items[0].first:
                    for pairs in layout:
                        pairs[:] = [(i + 1, k) for i, k in pairs]
        return _Plan(items, [layouts[s] for s in steps], charge)

    def _reuse(self, items: list[_Item], prompt_tokens: int, seen: _Computed | None = None) -> list[_Item]:
        """Mark what ``items`` can take from earlier passes; prepend one pass of the question if it pays.

        With ``seen``, only what those passes (one problem's, in one run) computed is taken.
        """
        contexts = []
        for it in items:
            known = self._memo.get(_key(it))
            if known is not None and (seen is None or _key(it) in seen.passes):
                self._memo.move_to_end(_key(it))
                it.known = known
                continue
            if it.keep:  # a context pass: continue the longest computed prefix
                contexts.append(it)
                matched, entry = self._kv.lookup(it.ids, max_len=len(it.ids) - 1)
                if seen is not None:
                    matched = min(matched, seen.prefixes.longest(it.ids[: len(it.ids) - 1]))
                if matched >= 2:
                    it.cached, it.source = matched - 1, entry
        fresh = [it for it in contexts if it.cached < prompt_tokens - 1]
        if len(fresh) < 2 or prompt_tokens < 2 or not self._kv.accepts(prompt_tokens):
            return items
        question = _Item(list(fresh[0].ids[:prompt_tokens]), [], keep=prompt_tokens, first=True)
        for it in fresh:
            it.cached, it.source = prompt_tokens - 1, question
        return [question, *items]

    def _encode_teacher_forced(
        self,
        start: int,
        steps: Sequence[str],
        matches: Sequence[Any],
        context: Any,
        isolated: Any,
        items: list[_Item],
        *,
        partial: bool = False,
    ) -> list[list[tuple[int, int]]]:
        """Append a solution's passes to ``items``; return, per step, its reads as (item, read) pairs.

        ``context`` is the tokenized question and solution (ids, offsets; the solution starts at character
        ``start``), ``isolated`` yields the tokenized ``lhs rhs`` of each step that ``matches``. A
        ``partial`` solution (one that goes on) ends with its delimiter, read like every other step's,
        and no eos.
        """
        delimiter, bos, eos = self.config.step_delimiter, self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        ids, starts = list(context[0]), [a for a, _ in context[1]]
        ends = eos is not None and not partial
        item = _Item([*ids, eos] if ends else ids, [], keep=len(ids))
        items.append(item)
        at_context = len(items) - 1
        layout: list[list[tuple[int, int]]] = []
        at, t = start, 1
        for i, (step, match) in enumerate(zip(steps, matches, strict=True)):
            last = i == len(steps) - 1 and not partial
            end = at + (len(match.group("lhs")) if match else len(step) + (0 if last else len(delimiter)))
            while t < len(ids) and starts[t] < at:
                t += 1
            reads = []
            while t < len(ids) and starts[t] < end:
                reads.append(t)
                t += 1
            if last and ends:
                reads.append(len(ids))
            pairs = [(at_context, len(item.reads) + k) for k in range(len(reads))]
            item.reads.extend(reads)
            if match:
                iso_ids, offsets = next(isolated)
                head = [] if bos is None else [bos]
                full = [*head, *iso_ids, *([] if eos is None else [eos])]
                lhs = len(match.group("lhs"))
                iso_reads = [len(head) + k for k, (a, _) in enumerate(offsets) if a >= lhs]
                if eos is not None:
                    iso_reads.append(len(full) - 1)
                items.append(_Item(full, [r for r in iso_reads if r > 0]))
                pairs.extend((len(items) - 1, k) for k in range(len(items[-1].reads)))
            layout.append(pairs)
            at += len(step) + len(delimiter)
        return layout

    def _encode_steps(self, prompt: str, steps: Sequence[Sequence[str]]) -> list[tuple[list[int], list[int]]]:
        cfg = self.config
        if cfg.kind == "outcome":
            texts = [prompt + cfg.step_delimiter.join(s) for s in steps]
            eos = self.tokenizer.eos_token_id
            out = []
            for ids in self.tokenizer(texts, add_special_tokens=False).input_ids:
                ids = list(ids) if eos is None else [*ids, eos]
                out.append((ids, [len(ids) - 1]))
            return out
        texts = [prompt + "".join(x + cfg.step_delimiter for x in s) for s in steps]
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        out = []
        for row, s in enumerate(steps):
            offsets = enc["offset_mapping"][row]
            reads, at, token = [], len(prompt), 0
            for step in s:
                at += len(step) + len(cfg.step_delimiter)  # the character position just past this step's delimiter
                while offsets[token][1] < at:
                    token += 1
                reads.append(token)
            out.append((list(enc["input_ids"][row]), reads))
        return out

    # ------------------------------------------------------------------ scoring

    async def score_steps(self, problem: Problem, candidates: Sequence[Candidate]) -> list[list[float]]:
        """A score per step of each candidate (process models only)."""
        if self.config.kind != "process":
            raise ValueError(f"{self.name} is an outcome reward model: it scores solutions, not steps")
        return await self._scores(problem, candidates)

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """One score per candidate (a process model's step scores aggregated by ``aggregation``)."""
        return self._solution_scores(await self._scores(problem, candidates))

    def _solution_scores(self, scores: list[list[float]]) -> list[float]:
        if self.config.kind == "outcome":
            if self.config.read == "teacher_forced":  # an empty solution checks nothing: the lowest score
                return [math.prod(s) if s else 0.0 for s in scores]
            return [s[0] for s in scores]
        return [aggregate(s, self.aggregation) for s in scores]

    def items(self, problem: Problem, candidates: Sequence[Candidate]) -> list[_Item]:
        """The encoded forward passes (token ids and read positions), ready to score or to price."""
        return self.plan(problem, candidates).items

    async def _scores(
        self, problem: Problem, candidates: Sequence[Candidate], plan: _Plan | None = None
    ) -> list[list[float]]:
        """Every candidate's scores; identical encodings (the same solution sampled twice) are scored once."""
        import asyncio

        plan = plan if plan is not None else self.plan(problem, candidates)
        distinct = _distinct(plan.items)
        by_key: dict[tuple[tuple[int, ...], tuple[int, ...]], Any] = {}
        for phase in (True, False):  # the question's pass first: the others continue its KV
            run = {k: it for k, it in distinct.items() if it.first == phase and it.known is None}
            scored = await asyncio.gather(*(self._batcher.submit(it, len(it.ids) - it.cached) for it in run.values()))
            by_key.update(zip(run, scored, strict=True))
        for k, it in distinct.items():
            if it.known is not None:
                by_key[k] = it.known
            elif not isinstance(by_key[k], Exception) and self.incremental:
                self._remember(k, by_key[k])
        values = [by_key[_key(it)] for it in plan.items]
        if plan.steps is None:
            return [list(v) for v in values]
        for v in values:
            if isinstance(v, Exception):
                raise v
        logs = [[sum(values[i][k] for i, k in pairs) for pairs in layout] for layout in plan.steps]
        if self.config.steps == "prefix":  # a step's score: every step up to it is right
            logs = [list(itertools.accumulate(x)) for x in logs]
        return [[math.exp(x) for x in row] for row in logs]

    def _remember(self, key: tuple[tuple[int, ...], tuple[int, ...]], values: list[float]) -> None:
        self._memo[key] = values
        self._memo.move_to_end(key)
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)

    def _run_batch(self, items: Sequence[_Item]) -> list[Any]:
        """Score a batch in chunks of similar lengths (little padding), each one forward pass."""
        start = time.perf_counter()
        self.computed_tokens += sum(len(it.ids) - it.cached for it in items)
        try:
            return self._run_chunks(items)
        finally:
            self.compute_seconds += time.perf_counter() - start

    def _run_chunks(self, items: Sequence[_Item]) -> list[Any]:
        order = sorted(range(len(items)), key=lambda i: (len(items[i].ids) - items[i].cached, items[i].cached))
        out: list[Any] = [None] * len(items)
        chunk: list[int] = []
        for i in order:
            if chunk and (len(chunk) + 1) * len(items[i].ids) > self.chunk_tokens:
                for j, r in zip(chunk, self._forward([items[j] for j in chunk]), strict=True):
                    out[j] = r
                chunk = []
            chunk.append(i)
        for j, r in zip(chunk, self._forward([items[j] for j in chunk]), strict=True):
            out[j] = r
        return out

    def _forward(self, items: Sequence[_Item]) -> list[Any]:
        if self.config.read == "teacher_forced":
            try:
                return self._forward_teacher_forced(items)
            except Exception as exc:
                if len(items) == 1:
                    return [exc]
                return [self._forward([it])[0] for it in items]
        return self._forward_head(items)

    def _forward_teacher_forced(self, items: Sequence[_Item]) -> list[Any]:
        """One pass over the new tokens of ``items`` (each continuing its cached prefix's KV).

        New tokens are left-padded, cached prefixes right-aligned before them, so every row's tokens
        sit at their true positions. Each item gets every token's log-probability (those of its cached
        prefix from the source), and keeps its KV in the cache when ``keep`` says so.
        """
        import torch
        from transformers import DynamicCache

        from archon.core.kv_batch import continuation_inputs, row_kv, stack_kv

        dev = self.device
        ids, pos, mask, c_max, s_max = continuation_inputs([(it.ids, it.cached) for it in items], self.pad_id)
        cache = DynamicCache()
        if c_max:
            prefixes = [it.source.payload[0] if it.cached else None for it in items]
            dtype = next(self.model.parameters()).dtype
            cache = DynamicCache(stack_kv(prefixes, [it.cached for it in items], c_max, self._kv_shape, dtype, dev))
        with torch.inference_mode():
            out = self.model(
                input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                use_cache=True, **{self._cache_arg: cache},
            )  # fmt: skip
            logp = torch.log_softmax(out.logits.float(), dim=-1)
        results = []
        for r, it in enumerate(items):
            n_new = len(it.ids) - it.cached
            rows = logp[r, s_max - n_new : s_max - 1]  # predicts tokens cached+1 .. len-1
            new = rows.gather(1, ids[r, s_max - n_new + 1 :].unsqueeze(1).to(rows.device))[:, 0].tolist()
            head = list(it.source.payload[1][: it.cached + 1]) if it.cached else [0.0]
            token_logps = head + new
            if it.keep and self.incremental:
                prefix = it.source.payload[0] if it.cached else None
                full = row_kv(cache.layers, r, c_max + s_max - n_new, prefix, it.cached)
                kv = [(k[:, : it.keep].clone(), v[:, : it.keep].clone()) for k, v in full]
                it.payload = (kv, token_logps[: it.keep])
                self._kv.insert(it.ids[: it.keep], it.payload)
            results.append([token_logps[t] for t in it.reads])
        return results

    def _forward_head(self, items: Sequence[_Item]) -> list[Any]:
        import torch

        try:
            width = max(len(it.ids) for it in items)
            ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(items), width), dtype=torch.long)
            for r, it in enumerate(items):
                ids[r, : len(it.ids)] = torch.tensor(it.ids)
                mask[r, : len(it.ids)] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
            out = []
            for r, it in enumerate(items):
                rows = logits[r, it.reads] if self.config.kind == "process" else logits[r].unsqueeze(0)
                out.append(self._read(rows).tolist())
            return out
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            return [self._forward_head([it])[0] for it in items]

    def _read(self, logits: Any) -> Any:
        import torch

        if self.config.score == "sigmoid" or logits.shape[-1] == 1:
            return torch.sigmoid(logits[..., 0])
        return torch.softmax(logits, dim=-1)[..., self.config.positive_label]

    # ------------------------------------------------------------------ charging

    def flops(self, problem: Problem, candidates: Sequence[Candidate]) -> tuple[int, int]:
        """FLOPs and tokens of scoring ``candidates`` (a forward pass per distinct solution, logits at the reads)."""
        return self.items_flops(self.items(problem, candidates))

    def items_flops(self, items: Sequence[_Item]) -> tuple[int, int]:
        """FLOPs and tokens of scoring encoded candidates (one forward pass per distinct encoding)."""
        distinct = [it for it in _distinct(items).values() if it.known is None]
        flops = sum(
            self.cost.prefill_flops(
                len(it.ids) - it.cached, it.cached, logit_positions=sum(1 for t in it.reads if t > it.cached)
            )
            for it in distinct
        )
        return flops, sum(len(it.ids) - it.cached for it in distinct)

    @property
    def kind(self) -> Literal["outcome", "process"]:
        """``process`` or ``outcome``, as its ``reward_config.json`` declares."""
        return self.config.kind

    def charged(self, ledger: Ledger, scope: Scope, *, hardware: HardwareProfile | None = None) -> ChargedReward:
        """The same reward model with every call charged to ``ledger`` under ``scope``.

        What is reused is credited only when this ledger's scope's problem computed it before: a
        problem is charged what it would cost run alone, whatever the process ran before (another
        trial of a study, another run). With ``hardware``, each call's idealized latency is charged too.
        """
        runs = self._computed.setdefault(ledger, {})
        return ChargedReward(self, ledger, scope, runs.setdefault(scope.problem, _Computed()), hardware)

    def close(self) -> None:
        """Release the batcher."""
        self._batcher.close()


class ChargedReward:
    """A :class:`RewardModel` whose calls reserve and settle their cost (exact: a forward pass is known).

    A call is charged for the passes the problem would compute run alone (``seen``: what this run
    computed for it), its idealized latency on ``hardware`` (one batched pass) when one is given.
    """

    def __init__(
        self,
        reward: RewardModel,
        ledger: Ledger,
        scope: Scope,
        seen: _Computed | None = None,
        hardware: HardwareProfile | None = None,
    ) -> None:
        self.reward, self.ledger, self.scope = reward, ledger, scope
        self.seen, self.hardware = (seen if seen is not None else _Computed()), hardware
        self.name, self.higher_is_better = reward.name, reward.higher_is_better
        self.config, self.aggregation = reward.config, reward.aggregation
        self.kind = reward.kind

    def _cost(self, items: Sequence[_Item]) -> Cost:
        flops, tokens = self.reward.items_flops(items)
        latency = 0.0
        if self.hardware is not None and tokens:
            cached = sum(it.cached for it in _distinct(items).values() if it.known is None)
            moved = self.reward.cost.prefill_bytes(tokens, cached)
            latency = self.hardware.seconds(flops, moved, self.reward.cost.facts.dtype)
        return Cost(flops=flops, prompt_tokens=tokens, calls=1, latency=latency)

    async def _charged(self, problem: Problem, candidates: Sequence[Candidate]) -> list[list[float]]:
        plan = self.reward.plan(problem, candidates, seen=self.seen)
        charged = plan.charge if plan.charge is not None else plan.items
        with self.ledger.charged(self.scope, self._cost(charged)):
            scores = await self.reward._scores(problem, candidates, plan)
        self.seen.add(charged)
        return scores

    async def score_steps(self, problem: Problem, candidates: Sequence[Candidate]) -> list[list[float]]:
        """:meth:`RewardModel.score_steps`, charged."""
        if self.reward.config.kind != "process":
            return await self.reward.score_steps(problem, candidates)  # raises: not a process model
        return await self._charged(problem, candidates)

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """:meth:`RewardModel.score`, charged."""
        return self.reward._solution_scores(await self._charged(problem, candidates))


def _replace(cfg: RewardConfig, **changes: Any) -> RewardConfig:
    from dataclasses import replace

    return replace(cfg, **changes)

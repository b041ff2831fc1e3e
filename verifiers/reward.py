"""Learned reward models: outcome (a score per solution) and process (a score per step).

Any Hugging Face checkpoint with a classification head works (``...ForSequenceClassification`` for
outcome models, ``...ForTokenClassification`` for process models); how it is read is declared in
configuration — a ``reward_config.json`` next to the weights, or ``config=`` — never guessed from the
model's name:

==================  ===========================================================================
``kind``            ``process`` (read at every step delimiter) or ``outcome`` (read at the end)
``prompt``          ``chat_template`` (question through the tokenizer's chat template, generation
                    prompt added) or ``text`` (the question as plain text, then a newline)
``step_delimiter``  the text that ends a step; one is appended after the last step
``score``           ``sigmoid`` (of the first logit) or ``softmax`` (probability of
                    ``positive_label``)
``higher_is_better``  whether a higher score means a better solution
==================  ===========================================================================

Calls from many problems are batched through the kernel's :class:`~archon.core.batcher.MicroBatcher`,
and :meth:`RewardModel.charged` charges them to a ledger like any model call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from archon.core import Aggregation, Candidate, Problem, aggregate
from archon.core.batcher import MicroBatcher
from archon.core.models import resolve_model
from budgets import Cost, CostModel, Ledger, Scope


@dataclass(frozen=True, slots=True)
class RewardConfig:
    """How a reward model reads a solution (see the module's table)."""

    kind: Literal["process", "outcome"]
    prompt: Literal["chat_template", "text"] = "chat_template"
    step_delimiter: str = "\n"
    score: Literal["sigmoid", "softmax"] = "sigmoid"
    positive_label: int = 1
    higher_is_better: bool = True

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
        if cfg.score not in ("sigmoid", "softmax"):
            raise ValueError(f"{where}: score must be 'sigmoid' or 'softmax', got {cfg.score!r}")
        if not cfg.step_delimiter:
            raise ValueError(f"{where}: step_delimiter must not be empty")
        return cfg


@dataclass
class _Item:
    ids: list[int]
    reads: list[int]


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
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

        where = resolve_model(model)
        self.config = self._read_config(where, config)
        auto = AutoModelForTokenClassification if self.config.kind == "process" else AutoModelForSequenceClassification
        self.device = torch.device(device)
        self.model = auto.from_pretrained(where).to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(where)
        self.name = name or str(model)
        self.higher_is_better = self.config.higher_is_better
        self.aggregation = aggregation
        self.chunk_tokens = chunk_tokens
        self.compute_seconds = 0.0
        self._prompts: dict[str, str] = {}
        """Time spent in forward passes (for measuring orchestration overhead)."""
        self.cost = CostModel.from_config(self.model.config, name=self.name)
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
        """Token ids of (question, solution) and the positions to read (every step's end, or the last token)."""
        return self.encode_many(problem, [candidate])[0]

    def encode_many(self, problem: Problem, candidates: Sequence[Candidate]) -> list[tuple[list[int], list[int]]]:
        """:meth:`encode` of each candidate, tokenized in one call (a solution sampled twice, once)."""
        if not candidates:
            return []
        steps = [tuple(c.steps(self.config.step_delimiter)) for c in candidates]
        distinct = list(dict.fromkeys(steps))
        encoded = dict(zip(distinct, self._encode_steps(self._prompt(problem), distinct), strict=True))
        return [(list(encoded[s][0]), list(encoded[s][1])) for s in steps]

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
        scores = await self._scores(problem, candidates)
        if self.config.kind == "outcome":
            return [s[0] for s in scores]
        return [aggregate(s, self.aggregation) for s in scores]

    def items(self, problem: Problem, candidates: Sequence[Candidate]) -> list[_Item]:
        """The encoded candidates (token ids and read positions), ready to score or to price."""
        return [_Item(*e) for e in self.encode_many(problem, candidates)]

    async def _scores(
        self, problem: Problem, candidates: Sequence[Candidate], items: list[_Item] | None = None
    ) -> list[list[float]]:
        """Every candidate's scores; identical encodings (the same solution sampled twice) are scored once."""
        import asyncio

        items = items if items is not None else self.items(problem, candidates)
        distinct = _distinct(items)
        scored = await asyncio.gather(*(self._batcher.submit(it, len(it.ids)) for it in distinct.values()))
        by_key = dict(zip(distinct, scored, strict=True))
        return [list(by_key[_key(it)]) for it in items]

    def _run_batch(self, items: Sequence[_Item]) -> list[Any]:
        """Score a batch in chunks of similar lengths (little padding), each one forward pass."""
        start = time.perf_counter()
        try:
            return self._run_chunks(items)
        finally:
            self.compute_seconds += time.perf_counter() - start

    def _run_chunks(self, items: Sequence[_Item]) -> list[Any]:
        order = sorted(range(len(items)), key=lambda i: len(items[i].ids))
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
            return [self._forward([it])[0] for it in items]

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
        distinct = _distinct(items).values()
        flops = sum(self.cost.prefill_flops(len(it.ids), logit_positions=len(it.reads)) for it in distinct)
        return flops, sum(len(it.ids) for it in distinct)

    def charged(self, ledger: Ledger, scope: Scope) -> ChargedReward:
        """The same reward model with every call charged to ``ledger`` under ``scope``."""
        return ChargedReward(self, ledger, scope)

    def close(self) -> None:
        """Release the batcher."""
        self._batcher.close()


class ChargedReward:
    """A :class:`RewardModel` whose calls reserve and settle their cost (exact: a forward pass is known)."""

    def __init__(self, reward: RewardModel, ledger: Ledger, scope: Scope) -> None:
        self.reward, self.ledger, self.scope = reward, ledger, scope
        self.name, self.higher_is_better = reward.name, reward.higher_is_better
        self.config, self.aggregation = reward.config, reward.aggregation

    async def _charged(self, problem: Problem, candidates: Sequence[Candidate]) -> list[list[float]]:
        items = self.reward.items(problem, candidates)
        flops, tokens = self.reward.items_flops(items)
        with self.ledger.charged(self.scope, Cost(flops=flops, prompt_tokens=tokens, calls=1)):
            return await self.reward._scores(problem, candidates, items)

    async def score_steps(self, problem: Problem, candidates: Sequence[Candidate]) -> list[list[float]]:
        """:meth:`RewardModel.score_steps`, charged."""
        if self.reward.config.kind != "process":
            return await self.reward.score_steps(problem, candidates)  # raises: not a process model
        return await self._charged(problem, candidates)

    async def score(self, problem: Problem, candidates: Sequence[Candidate]) -> list[float]:
        """:meth:`RewardModel.score`, charged."""
        scores = await self._charged(problem, candidates)
        if self.reward.config.kind == "outcome":
            return [s[0] for s in scores]
        return [aggregate(s, self.reward.aggregation) for s in scores]


def _replace(cfg: RewardConfig, **changes: Any) -> RewardConfig:
    from dataclasses import replace

    return replace(cfg, **changes)

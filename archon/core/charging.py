"""Charging engine calls to a ledger: reserve the worst case, call, settle the actual cost.

:class:`ChargedEngine` wraps any :class:`~archon.core.Engine` for one ledger scope (a node and a
problem). Every ``generate`` and ``score`` first reserves its worst-case :class:`~budgets.Cost` —
prompt tokens (exact when the engine can tokenize, else an upper bound), ``n × max_tokens``
generated tokens, the FLOPs of the cost model, the idealized latency on a hardware profile, dollars at
the declared prices — and raises :class:`~budgets.BudgetExhausted` without calling the engine when
that would break a limit. After the call it settles the actual cost from the result's usage; a
failed call releases its reservation.

Prefix reuse: a call is credited with the cached prompt tokens the engine reports, but with
``prefixes`` (a :class:`~archon.core.prefixes.ComputedPrefixes` of the scope's problem) at most the
longest prefix of its prompt that the same problem had computed before, so that a problem's charges do
not depend on which other problems ran earlier in the process (see :mod:`archon.core.prefixes`).

Wall time: a batched call's time is shared among the requests of its batch in proportion to their
tokens (computed prompt tokens plus generated tokens), as the engine reports it in
``GenResult.compute_seconds``; engines that batch elsewhere (a server) report the call's own wall time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from archon.core.generation import Engine, EngineBase, GenRequest, GenResult, Prompt, ScoreResult, prompt_kind
from archon.core.prefixes import ComputedPrefixes
from budgets import Cost, CostModel, HardwareProfile, Ledger, ModelFacts, Scope


@dataclass(frozen=True, slots=True)
class Prices:
    """Dollars per million tokens: prompt tokens computed, prompt tokens cached, generated tokens."""

    input: float = 0.0
    output: float = 0.0
    cached: float | None = None

    def dollars(self, prompt: int, cached: int, generated: int) -> float:
        """The price of a call."""
        cached_price = self.input if self.cached is None else self.cached
        return ((prompt - cached) * self.input + cached * cached_price + generated * self.output) / 1e6


class ChargedEngine(EngineBase):
    """An engine whose every call is charged to one ledger scope.

    It declares the wrapped engine's ``supports_n``, ``encode`` and ``tokenizer``; ``generate_from`` is
    not offered (operators draw through ``generate``).

    Args:
        engine: The engine to call.
        ledger: The run's ledger (its budget is enforced).
        scope: Node and problem the calls are charged to.
        cost: The model's cost model (default: from the engine's facts, estimated).
        hardware: Profile for idealized latency (``None``: latency is not charged).
        prices: Dollars per million tokens (API models).
        prefixes: The token sequences the scope's problem has had this engine compute (``None``:
            credit whatever the engine reports as cached).
        credit: ``reported``: the cached tokens the engine reports, at most what ``prefixes`` holds;
            ``computed``: what ``prefixes`` holds, whatever the engine reports (an ideal prefix cache:
            what a tuning study needs, whose engines report nominal usage without any cached token).
    """

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        scope: Scope,
        *,
        cost: CostModel | None = None,
        hardware: HardwareProfile | None = None,
        prices: Prices | None = None,
        prefixes: ComputedPrefixes | None = None,
        credit: Literal["reported", "computed"] = "reported",
    ) -> None:
        if credit not in ("reported", "computed"):
            raise ValueError(f"credit must be 'reported' or 'computed', got {credit!r}")
        self.engine, self.ledger, self.scope = engine, ledger, scope
        self.prefixes = prefixes
        self.credit = credit
        self.cost = cost or CostModel(engine.facts)
        self.hardware = hardware
        self.prices = prices or Prices()
        self.name = engine.name

    @property
    def facts(self) -> ModelFacts:
        """The wrapped engine's model facts."""
        return self.engine.facts

    @property
    def supports_n(self) -> bool | None:  # type: ignore[override]
        """Whether the wrapped engine shares one prefill among ``n`` completions."""
        return self.engine.supports_n

    @property
    def tokenizer(self) -> Any:  # type: ignore[override]
        """The wrapped engine's tokenizer (``None`` when it has none)."""
        return self.engine.tokenizer

    def encode(self, prompt: Prompt) -> Sequence[int] | None:
        """The wrapped engine's token ids of ``prompt`` (``None`` when it cannot tokenize)."""
        return self.engine.encode(prompt)

    def for_scope(self, scope: Scope) -> ChargedEngine:
        """The same engine charged to another scope."""
        prefixes = self.prefixes if scope.problem == self.scope.problem else None
        return ChargedEngine(
            self.engine,
            self.ledger,
            scope,
            cost=self.cost,
            hardware=self.hardware,
            prices=self.prices,
            prefixes=prefixes,
            credit=self.credit,
        )

    # ------------------------------------------------------------------ generate

    async def generate(self, request: GenRequest) -> GenResult:
        """Reserve the worst case, generate, settle the actual cost (or release on failure)."""
        ids = self.engine.encode(request.prompt)
        prompt = len(ids) if ids is not None else self.prompt_tokens(request.prompt)
        prefills = self._prefills(request.n)
        room = max(1, min(request.max_tokens, self.cost.facts.context_length - prompt))  # the context caps length
        worst = self._generation_cost(prompt, prefills, [room] * request.n, cached=0)
        reservation = self.ledger.reserve(self.scope, worst)
        try:
            result = await self.engine.generate(request)
        except BaseException:
            reservation.release()
            raise
        u = result.usage
        k = self._prefills(request.n)  # the engine may have learned whether its server honours n
        actual_prompt = u.prompt_tokens // k if u.prompt_tokens else prompt
        lengths = _lengths(result)
        # the first prefill may reuse what this problem computed before; the other k - 1 its own prompt
        cached = self._credit(ids, u.cached_tokens, extra=(k - 1) * len(ids) if ids is not None else 0)
        if ids is not None and self.prefixes is not None:
            for c in result.completions:
                self.prefixes.add((*ids, *c.token_ids))
        actual = self._generation_cost(actual_prompt, k, lengths, cached=cached, seconds=_seconds(result))
        reservation.settle(actual)
        return result

    def _prefills(self, n: int) -> int:
        """How many times the prompt may be prefilled: once, unless the engine fans ``n`` out."""
        return 1 if self.engine.supports_n is True else n

    def _generation_cost(
        self, prompt: int, prefills: int, lengths: Sequence[int], *, cached: int, seconds: float = 0.0
    ) -> Cost:
        per_cached = cached // prefills
        flops = prefills * self.cost.prefill_flops(prompt - per_cached, per_cached)
        flops += sum(self.cost.decode_flops(max(0, g - 1), prompt) for g in lengths)
        generated = sum(lengths)
        latency = 0.0
        if self.hardware is not None:
            latency = self.hardware.call_seconds(self.cost, prompt, lengths, per_cached)
            latency += (prefills - 1) * self.hardware.call_seconds(self.cost, prompt, [1], per_cached)
        return Cost(
            flops=flops,
            prompt_tokens=prompt * prefills,
            cached_tokens=cached,
            generated_tokens=generated,
            calls=1,
            seconds=seconds,
            latency=latency,
            dollars=self.prices.dollars(prompt * prefills, cached, generated),
        )

    # ------------------------------------------------------------------ score

    async def score(self, prompt: Prompt, continuations: Sequence[str]) -> ScoreResult:
        """Reserve the worst case of a scoring pass, score, settle."""
        ids = self.engine.encode(prompt)
        p = len(ids) if ids is not None else self.prompt_tokens(prompt)
        conts = [self.text_tokens(c) for c in continuations]
        reservation = self.ledger.reserve(self.scope, self._score_cost(p, conts, cached=0))
        try:
            result = await self.engine.score(prompt, continuations)
        except BaseException:
            reservation.release()
            raise
        actual_conts = [len(t) for t in result.token_ids] if result.token_ids else conts
        cached = min(self._credit(ids, result.usage.cached_tokens), p - 1) if p else 0
        if ids is not None and self.prefixes is not None:
            for t in result.token_ids or ():
                self.prefixes.add((*ids, *t))
        reservation.settle(self._score_cost(p, actual_conts, cached=cached, seconds=_seconds(result)))
        return result

    def _score_cost(self, prompt: int, conts: Sequence[int], *, cached: int, seconds: float = 0.0) -> Cost:
        flops = self.cost.prefill_flops(prompt - cached, cached)
        flops += sum(self.cost.prefill_flops(m, prompt, logit_positions=m) for m in conts if m)
        tokens = prompt + sum(conts)
        latency = 0.0
        if self.hardware is not None:
            latency = self.hardware.score_seconds(self.cost, prompt, sum(conts), cached)
        return Cost(
            flops=flops,
            prompt_tokens=tokens,
            cached_tokens=cached,
            calls=1,
            seconds=seconds,
            latency=latency,
            dollars=self.prices.dollars(tokens, cached, 0),
        )

    def _credit(self, ids: Sequence[int] | None, reported: int, *, extra: int = 0) -> int:
        """Cached prompt tokens to credit: as reported, at most what this problem computed before (+ ``extra``).

        Records the prompt as computed by this problem from now on.
        """
        if ids is None or self.prefixes is None:
            return reported
        computed = self.prefixes.longest(ids) + extra
        credit = computed if self.credit == "computed" else min(reported, computed)
        self.prefixes.add(ids)
        return credit

    # ------------------------------------------------------------------ token counts

    def prompt_tokens(self, prompt: Prompt) -> int:
        """Tokens of a prompt: exact when the engine can tokenize, else an upper bound.

        The bound: one token per UTF-8 byte (byte-level BPE and byte-fallback tokenizers never
        produce more) plus 16 tokens of template per chat message and 16 for special tokens.
        """
        ids = self.engine.encode(prompt)
        if ids is not None:
            return len(ids)
        kind = prompt_kind(prompt)
        if kind == "tokens":
            return len(prompt)
        if kind == "text":
            return len(str(prompt).encode()) + 16
        return sum(len(m["content"].encode()) + 16 for m in prompt) + 16  # type: ignore[index, union-attr]

    def text_tokens(self, text: str) -> int:
        """Tokens of a continuation (no special tokens): exact when the engine has a tokenizer, else a bound."""
        tokenizer = self.engine.tokenizer
        if tokenizer is not None:
            return len(tokenizer(text, add_special_tokens=False).input_ids)
        return len(text.encode())

    async def aclose(self) -> None:
        """Nothing to release: the wrapped engine is shared and closed by its owner."""


def _lengths(result: GenResult) -> list[int]:
    """Generated tokens of each completion (from token ids, else the usage shared evenly)."""
    if all(c.token_ids for c in result.completions):
        return [len(c.token_ids) for c in result.completions]
    n = max(1, len(result.completions))
    total = result.usage.generated_tokens
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _seconds(result: GenResult | ScoreResult) -> float:
    share = result.compute_seconds
    return result.seconds if share is None else share

"""Charging real engine calls: the ledger's figures equal the cost model's, and budgets bind."""

import asyncio

import pytest

import archon.data
from archon.core import ChargedEngine, GenRequest, Prices, RequestError
from budgets import Budget, BudgetExhausted, CostModel, Ledger, Scope, profile
from samplers.sample import sample
from samplers.transformers_engine import TransformersEngine


@pytest.fixture(scope="module")
def engine():
    e = TransformersEngine("tiny-l")
    yield e
    e.close()


@pytest.fixture(scope="module")
def question():
    return archon.data.load("arith", "dev")[7].messages()


def test_settled_cost_is_the_cost_model_of_what_ran(engine, question):
    ledger = Ledger()
    cost = CostModel.from_config("tiny-l")
    charged = ChargedEngine(
        engine, ledger, Scope("sample", "p1"), cost=cost, hardware=profile("h100"), prices=Prices(input=0.5, output=1.5)
    )
    r = asyncio.run(charged.generate(GenRequest(question, n=4, max_tokens=40, seed=3)))
    p = len(engine.encode(question))
    lengths = [c.num_tokens for c in r.completions]
    total = ledger.total()
    assert total.flops == cost.generation_flops(p, lengths, r.usage.cached_tokens)
    assert (total.prompt_tokens, total.generated_tokens, total.calls) == (p, sum(lengths), 1)
    assert total.latency == pytest.approx(profile("h100").call_seconds(cost, p, lengths, r.usage.cached_tokens))
    assert total.dollars == pytest.approx(
        ((p - r.usage.cached_tokens) * 0.5 + r.usage.cached_tokens * 0.5 + sum(lengths) * 1.5) / 1e6
    )
    assert total.seconds > 0 and ledger.overruns == 0 and ledger.outstanding == 0


def test_a_tiny_budget_yields_fewer_samples_never_more_cost(engine, question):
    cost = CostModel.from_config("tiny-l")
    p = len(engine.encode(question))
    limit = cost.generation_flops(p, [48] * 3)  # worst case of three samples
    free = Ledger()
    tight = Ledger(Budget.of(per_problem={"flops": limit}))
    many = asyncio.run(sample(ChargedEngine(engine, free, Scope("s", "p")), question, 16, max_tokens=48, seed=1))
    few = asyncio.run(sample(ChargedEngine(engine, tight, Scope("s", "p")), question, 16, max_tokens=48, seed=1))
    assert len(many) == 16
    assert 1 <= len(few) < 16
    assert tight.total().flops <= limit
    assert tight.refusals >= 1 and tight.outstanding == 0
    with pytest.raises(BudgetExhausted):
        asyncio.run(
            ChargedEngine(engine, Ledger(Budget.of(per_run={"calls": 0})), Scope()).generate(
                GenRequest(question, max_tokens=4)
            )
        )


def test_a_failing_call_releases_its_reservation(engine):
    ledger = Ledger(Budget.of(per_run={"tokens": 10_000}))
    charged = ChargedEngine(engine, ledger, Scope("n", "p"))
    with pytest.raises(RequestError):
        asyncio.run(charged.generate(GenRequest("1" * 3000, max_tokens=4)))
    assert ledger.outstanding == 0 and ledger.total().calls == 0


def test_scoring_is_charged_too(engine, question):
    ledger = Ledger()
    cost = CostModel.from_config("tiny-l")
    charged = ChargedEngine(engine, ledger, Scope("judge", "p1"), cost=cost)
    res = asyncio.run(charged.score(question, ["5 + 8 = 13", "yes"]))
    assert len(res.logprobs) == 2
    p = len(engine.encode(question))
    total = ledger.total()
    assert total.prompt_tokens == p + 10 + 3 and total.calls == 1
    assert total.flops <= cost.prefill_flops(p) + cost.prefill_flops(10, p, logit_positions=10) + cost.prefill_flops(
        3, p, logit_positions=3
    )
    assert total.flops > 0 and ledger.overruns == 0


def test_a_batch_wall_time_is_shared_in_proportion_to_tokens(engine, question):
    async def both():
        short = GenRequest(question, max_tokens=4, temperature=0)
        long = GenRequest(question, n=8, max_tokens=40, temperature=1.0, seed=2)
        return await asyncio.gather(engine.generate(short), engine.generate(long))

    a, b = asyncio.run(both())
    assert a.compute_seconds is not None and b.compute_seconds is not None
    tokens = [r.usage.computed_prompt_tokens + r.usage.generated_tokens for r in (a, b)]
    assert a.compute_seconds / b.compute_seconds == pytest.approx(tokens[0] / tokens[1], rel=1e-6)
    assert a.compute_seconds + b.compute_seconds <= max(a.seconds, b.seconds) + 1e-6


def test_the_worst_case_is_capped_by_the_context(engine, question):
    p = len(engine.encode(question))
    cost = CostModel.from_config("tiny-l")
    ledger = Ledger(Budget.of(per_problem={"tokens": 2048 + 10}))
    charged = ChargedEngine(engine, ledger, Scope("s", "p"), cost=cost)
    r = asyncio.run(charged.generate(GenRequest(question, max_tokens=10**6, temperature=0)))
    assert r.completions[0].finish_reason == "eos" and ledger.total().prompt_tokens == p and ledger.overruns == 0

"""The ledger: limits are never exceeded and every reservation is settled or released."""

import asyncio
import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archon.core import ChargedEngine, Completion, EngineBase, GenRequest, GenResult, ModelFacts, Prices, Usage
from budgets import LIMITS, Budget, BudgetError, BudgetExhausted, Cost, CostModel, Ledger, Limits, Scope, profile

FACTS = ModelFacts.from_config(
    {
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 100,
        "max_position_embeddings": 4096,
    },
    name="fake",
)


class FakeEngine(EngineBase):
    """A pure-logic engine: token counts from the prompt's length, random completion lengths, random failures."""

    name = "fake"
    facts = FACTS

    def __init__(self, rng: random.Random, fail_rate: float = 0.0) -> None:
        self.rng, self.fail_rate = rng, fail_rate

    def encode(self, prompt):
        return list(range(len(prompt)))

    async def generate(self, request: GenRequest) -> GenResult:
        for _ in range(self.rng.randint(0, 3)):
            await asyncio.sleep(0)
        if self.rng.random() < self.fail_rate:
            raise RuntimeError("backend failure")
        lengths = [self.rng.randint(1, request.max_tokens) for _ in range(request.n)]
        cached = self.rng.randint(0, len(request.prompt) - 1)
        comps = tuple(Completion("x" * g, tuple(range(g)), finish_reason="length") for g in lengths)
        usage = Usage(len(request.prompt), cached, sum(lengths))
        return GenResult(request, comps, usage, self.name, seconds=0.001 * sum(lengths))

    async def score(self, prompt, continuations):  # pragma: no cover - not used here
        raise NotImplementedError

    async def aclose(self):  # pragma: no cover
        pass


def test_reserve_settle_release_and_reports():
    ledger = Ledger(Budget.of(per_problem={"calls": 2}, per_run={"tokens": 1000}))
    a = ledger.reserve(Scope("n1", "p1"), Cost(prompt_tokens=100, generated_tokens=100, calls=1, flops=9.0))
    b = ledger.reserve(Scope("n2", "p1"), Cost(prompt_tokens=100, generated_tokens=100, calls=1))
    with pytest.raises(BudgetExhausted, match="problem 'p1' would exceed its budget: calls 3 > 2"):
        ledger.reserve(Scope("n1", "p1"), Cost(calls=1))
    b.release()
    c = ledger.reserve(Scope("n1", "p1"), Cost(prompt_tokens=10, calls=1))
    a.settle(Cost(prompt_tokens=100, generated_tokens=40, calls=1, flops=5.0))
    c.settle(Cost(prompt_tokens=10, calls=1))
    with pytest.raises(BudgetError, match="already settled"):
        a.settle(Cost())
    assert ledger.outstanding == 0 and ledger.refusals == 1 and ledger.overruns == 0
    assert ledger.total().tokens == 150 and ledger.by("node")["n1"].calls == 2
    assert [(s.node, c.tokens) for s, c in ledger.calls] == [("n1", 140), ("n1", 10)]
    report = ledger.report()
    assert report["by_problem"]["p1"]["tokens"] == 150 and report["total"]["flops"] == 5.0
    with pytest.raises(BudgetExhausted, match="the run would exceed its budget: tokens"):
        ledger.reserve(Scope("n1", "p2"), Cost(prompt_tokens=900))


def test_a_settlement_above_its_reservation_is_reported_as_an_overrun():
    ledger = Ledger()
    ledger.reserve(Scope(), Cost(generated_tokens=10)).settle(Cost(generated_tokens=11))
    assert ledger.overruns == 1


def test_wall_time_limits_refuse_new_calls_once_reached():
    ledger = Ledger(Budget.of(per_run={"seconds": 1.0}))
    ledger.reserve(Scope(), Cost(calls=1)).settle(Cost(calls=1, seconds=1.5))
    with pytest.raises(BudgetExhausted, match=r"seconds 1\.5 >= 1"):
        ledger.reserve(Scope(), Cost(calls=1))


def test_budget_validation_names_the_limit():
    with pytest.raises(BudgetError, match=r"budget.per_problem: unknown limit 'flop' \(limits: flops, tokens"):
        Budget.of(per_problem={"flop": 1})
    with pytest.raises(BudgetError, match="budget limit calls: must be a number >= 0"):
        Limits(calls=-1)


limits_strategy = st.fixed_dictionaries(
    {},
    optional={
        "flops": st.floats(1e5, 1e8),
        "tokens": st.integers(10, 3000),
        "calls": st.integers(1, 12),
        "latency": st.floats(1e-7, 1e-4),
        "dollars": st.floats(1e-5, 1e-2),
    },
)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    per_problem=limits_strategy,
    per_run=limits_strategy,
    problems=st.integers(1, 4),
    calls_per_problem=st.integers(1, 6),
    fail_rate=st.sampled_from([0.0, 0.2]),
)
def test_no_limit_is_ever_exceeded_and_every_reservation_closes(
    seed, per_problem, per_run, problems, calls_per_problem, fail_rate
):
    rng = random.Random(seed)
    budget = Budget.of(per_problem=per_problem, per_run=per_run)
    ledger = Ledger(budget)
    engine = FakeEngine(rng, fail_rate)
    cost = CostModel(FACTS)
    hw = profile("a100")

    async def one_problem(p: int) -> None:
        charged = ChargedEngine(
            engine, ledger, Scope("sample", f"p{p}"), cost=cost, hardware=hw, prices=Prices(input=1.0, output=3.0)
        )

        async def one_call() -> None:
            req = GenRequest("q" * rng.randint(1, 200), n=rng.randint(1, 4), max_tokens=rng.randint(1, 60))
            with contextlib.suppress(BudgetExhausted, RuntimeError):
                await charged.generate(req)

        await asyncio.gather(*(one_call() for _ in range(calls_per_problem)))

    async def run() -> None:
        await asyncio.wait_for(asyncio.gather(*(one_problem(p) for p in range(problems))), 30)

    asyncio.run(run())
    assert ledger.outstanding == 0 and ledger.overruns == 0
    for name in LIMITS:
        run_limit = getattr(budget.per_run, name)
        if run_limit is not None:
            assert getattr(ledger.total(), name) <= run_limit * (1 + 1e-9)
        problem_limit = getattr(budget.per_problem, name)
        if problem_limit is not None:
            for c in ledger.by("problem").values():
                assert getattr(c, name) <= problem_limit * (1 + 1e-9)


def test_the_rich_table_lists_every_node_and_the_total():
    from rich.console import Console

    ledger = Ledger()
    for node, flops in (("sample", 8.0), ("judge", 2.0)):
        ledger.reserve(Scope(node, "p1"), Cost(calls=1, flops=10)).settle(Cost(calls=1, flops=flops))
    console = Console(width=200, record=True)
    console.print(ledger.table())
    text = console.export_text()
    assert "sample" in text and "judge" in text and "total" in text and "10" in text


def test_the_charged_block_releases_on_error_and_charges_the_worst_case_when_unsettled():
    ledger = Ledger(Budget.of(per_run={"calls": 5}))
    with pytest.raises(ValueError), ledger.charged(Scope("prm", "p"), Cost(calls=1, flops=10)):
        raise ValueError("reward model failed")
    assert ledger.total().calls == 0 and ledger.outstanding == 0
    with ledger.charged(Scope("prm", "p"), Cost(calls=1, flops=10)) as r:
        r.settle(Cost(calls=1, flops=4))
    with ledger.charged(Scope("prm", "p"), Cost(calls=1, flops=10)):
        pass
    assert ledger.total().flops == 14 and ledger.total().calls == 2


def test_a_planned_run_shares_its_budget_fairly_and_passes_on_what_is_left() -> None:
    ledger = Ledger(Budget.of(per_run={"tokens": 100}))
    ledger.plan(4)
    call = Cost(prompt_tokens=10, generated_tokens=20, calls=1)  # 30 tokens: more than a quarter of 100
    with pytest.raises(BudgetExhausted, match=r"share of the run's budget.*4 problems not finished"):
        ledger.reserve(Scope("n", "a"), call)
    ledger.reserve(Scope("n", "a"), Cost(prompt_tokens=5, generated_tokens=5)).settle(Cost(prompt_tokens=5))
    ledger.finish("a")  # a spent 5 of its 25: the other three share the 95 left
    ledger.reserve(Scope("n", "b"), call).settle(call)
    assert ledger.problem_refusals("a") and not ledger.problem_refusals("b")
    assert ledger.total().tokens == 35


def test_carried_costs_count_against_the_run() -> None:
    ledger = Ledger(Budget.of(per_run={"flops": 10.0}))
    ledger.carry("old", Cost(flops=8.0, calls=1), {"sample": Cost(flops=8.0, calls=1)})
    ledger.plan(2)
    with pytest.raises(BudgetExhausted):
        ledger.reserve(Scope("sample", "new"), Cost(flops=3.0))
    ledger.reserve(Scope("sample", "new"), Cost(flops=2.0)).settle(Cost(flops=2.0))
    assert ledger.problem_by_node("old") == {"sample": Cost(flops=8.0, calls=1)}
    assert ledger.total().flops == 10.0


def test_without_a_plan_a_per_run_limit_is_first_come_first_served() -> None:
    ledger = Ledger(Budget.of(per_run={"calls": 3}))
    for _ in range(3):
        ledger.reserve(Scope("n", "a"), Cost(calls=1)).settle(Cost(calls=1))
    with pytest.raises(BudgetExhausted, match="the run would exceed"):
        ledger.reserve(Scope("n", "b"), Cost(calls=1))

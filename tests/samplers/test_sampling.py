"""choose / log_softmax_and_entropy: greedy rows, temperature, top-k, top-p, per-row independence, entropy."""

import math

import pytest
import torch

from samplers.sampling import RowParams, choose, log_softmax_and_entropy

N = 20_000


def params(rows, temperature=1.0, top_p=1.0, top_k=0):
    return RowParams(
        torch.full((rows,), float(temperature)),
        torch.full((rows,), float(top_p)),
        torch.full((rows,), int(top_k), dtype=torch.long),
    )


def uniforms(n, seed=0):
    return torch.rand(n, generator=torch.Generator().manual_seed(seed))


def draw(logits_row, n=N, seed=0, **kw):
    """``n`` draws from one row of logits, one uniform each (rows of one batch)."""
    logits = torch.as_tensor(logits_row, dtype=torch.float32).unsqueeze(0).expand(n, -1)
    return choose(logits, params(n, **kw), uniforms(n, seed))


def frequencies(tokens, vocab):
    return torch.bincount(tokens, minlength=vocab).double() / len(tokens)


def chi2(tokens, probs):
    """Pearson's statistic of the observed counts against ``probs`` (tokens of probability 0 must not occur)."""
    counts = torch.bincount(tokens, minlength=len(probs)).double()
    probs = torch.as_tensor(probs, dtype=torch.float64)
    assert counts[probs == 0].sum() == 0
    expected = probs[probs > 0] * len(tokens)
    return float(((counts[probs > 0] - expected) ** 2 / expected).sum())


# chi-square critical values at p = 1e-4 by degrees of freedom (a fixed seed makes each test deterministic)
CRIT = {1: 15.14, 2: 18.42, 3: 21.11, 4: 23.51}


# ---------------------------------------------------------------------------------------------- greedy


def test_temperature_zero_rows_take_the_argmax_whatever_the_uniform():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 50, generator=g)
    u = torch.rand(64, generator=g)
    out = choose(logits, params(64, temperature=0.0, top_p=0.3, top_k=5), u)
    assert out.dtype == torch.long and out.shape == (64,)
    assert torch.equal(out, logits.argmax(-1))


@pytest.mark.parametrize(
    "kw", [{"top_k": 1}, {"top_p": 1e-6}, {"top_p": 0.0}], ids=["top_k=1", "top_p=1e-6", "top_p=0"]
)
def test_a_single_survivor_makes_sampling_greedy(kw):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(8, 30, generator=g) * 3
    for u in (0.0, 0.5, 1 - 2**-24):
        out = choose(logits, params(8, temperature=1.3, **kw), torch.full((8,), u))
        assert torch.equal(out, logits.argmax(-1))


# ---------------------------------------------------------------------------------------------- distributions


@pytest.mark.parametrize("temperature", [0.7, 1.0, 2.0])
def test_draws_follow_softmax_of_logits_over_temperature(temperature):
    logits = torch.tensor([1.0, 0.0, 2.0, -1.0, 0.5])
    expected = torch.softmax(logits.double() / temperature, -1)
    tokens = draw(logits, temperature=temperature)
    assert chi2(tokens, expected) < CRIT[4]
    assert (frequencies(tokens, 5) - expected).abs().max() < 0.015
    if temperature != 1.0:  # and would have failed without the temperature
        assert chi2(tokens, torch.softmax(logits.double(), -1)) > 100


def test_top_k_draws_only_the_k_most_likely_tokens_in_proportion():
    logits = torch.tensor([0.0, 1.5, -1.0, 1.0, 0.5])  # the top 2 are tokens 1 and 3
    tokens = draw(logits, top_k=2)
    assert set(tokens.tolist()) == {1, 3}
    expected = torch.zeros(5, dtype=torch.float64)
    expected[[1, 3]] = torch.softmax(logits[[1, 3]].double(), -1)
    assert chi2(tokens, expected) < CRIT[1]


@pytest.mark.parametrize(
    ("top_p", "nucleus"),
    [(0.45, [2]), (0.55, [2, 0]), (0.7, [2, 0]), (0.8, [2, 0, 3]), (0.95, [2, 0, 3, 1]), (1.0, [2, 0, 3, 1])],
)
def test_top_p_keeps_the_smallest_nucleus_reaching_p(top_p, nucleus):
    probs = torch.tensor([0.25, 0.1, 0.5, 0.15])  # ranked: token 2 (0.5), 0 (0.25), 3 (0.15), 1 (0.1)
    tokens = draw(probs.log(), top_p=top_p)
    assert sorted(set(tokens.tolist())) == sorted(nucleus)
    expected = torch.zeros(4, dtype=torch.float64)
    expected[nucleus] = probs[nucleus].double() / probs[nucleus].sum()
    if len(nucleus) > 1:
        assert chi2(tokens, expected) < CRIT[len(nucleus) - 1]


def test_top_p_applies_to_the_distribution_left_by_top_k():
    # After top-k=2 the survivors have 4/7 and 3/7: a nucleus of 0.5 is the top token alone (it would hold two
    # tokens, 0.4 + 0.3, if top-p looked at the untruncated distribution).
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])
    assert set(draw(probs.log(), top_k=2, top_p=0.5).tolist()) == {0}
    assert set(draw(probs.log(), top_k=3, top_p=0.75).tolist()) == {0, 1}


def test_temperature_applies_before_top_p():
    logits = torch.tensor([2.0, 1.0, 0.0])
    # T=1: probs .665 .245 .090 -> top_p .7 keeps 2 tokens. T=0.25: .982 ... -> keeps only the first.
    assert set(draw(logits, top_p=0.7).tolist()) == {0, 1}
    assert set(draw(logits, temperature=0.25, top_p=0.7).tolist()) == {0}


def test_minus_infinity_logits_are_never_drawn():
    inf = float("-inf")
    logits = torch.tensor([inf, 0.3, inf, -2.0, 1.0, inf])
    edge = torch.tensor([0.0, 2**-24, 0.5, 1 - 2**-24])  # including the smallest and largest float32 uniforms
    for kw in ({}, {"temperature": 0.3}, {"temperature": 5.0}, {"top_p": 0.9}, {"top_k": 4}, {"temperature": 0.0}):
        tokens = draw(logits, n=4000, **kw)
        edges = choose(logits.expand(4, -1), params(4, **kw), edge)
        assert not set(tokens.tolist()) & {0, 2, 5}
        assert not set(edges.tolist()) & {0, 2, 5}
    assert draw(logits, n=4000).unique().numel() == 3  # all finite tokens do occur


def test_half_precision_logits_are_sampled_in_float32():
    logits = torch.tensor([1.0, 0.0, 2.0, -1.0, 0.5])
    tokens = draw(logits.to(torch.bfloat16))
    assert chi2(tokens, torch.softmax(logits.double(), -1)) < CRIT[4]


# ---------------------------------------------------------------------------------------------- independence


def test_rows_with_different_params_in_one_batch_are_independent():
    g = torch.Generator().manual_seed(3)
    kinds = [
        {"temperature": 0.0},
        {"temperature": 1.0},
        {"temperature": 0.6, "top_k": 3},
        {"temperature": 1.4, "top_p": 0.6},
        {"temperature": 0.9, "top_k": 5, "top_p": 0.8},
    ]
    rows_per_kind = 400
    logits = torch.randn(len(kinds) * rows_per_kind, 12, generator=g) * 2
    u = torch.rand(len(logits), generator=g)
    alone = []
    for i, kw in enumerate(kinds):
        rows = slice(i * rows_per_kind, (i + 1) * rows_per_kind)
        alone.append(choose(logits[rows], params(rows_per_kind, **kw), u[rows]))
    per_kind = [params(rows_per_kind, **kw) for kw in kinds]
    mixed = RowParams(*(torch.cat([getattr(p, f) for p in per_kind]) for f in ("temperature", "top_p", "top_k")))
    together = choose(logits, mixed, u)
    assert torch.equal(together, torch.cat(alone))
    # and the rows' own params did act: each kind's draws differ from the untruncated temperature-1 draws
    plain = choose(logits, params(len(logits)), u)
    for i in (0, 2, 3, 4):
        rows = slice(i * rows_per_kind, (i + 1) * rows_per_kind)
        assert not torch.equal(together[rows], plain[rows])


def test_a_row_without_top_p_keeps_its_unlikely_tokens_when_a_batch_mate_uses_top_p():
    """Regression: top_p=1 must mean "off" for that row, whatever the other rows of the batch ask for.

    Token 0 has probability ~2e-9; in float32 the mass ranked above it rounds to 1.0, which used to count as
    ">= top_p" and mask it as soon as any row of the batch turned truncation on. The uniform 1e-9 draws it.
    """
    logits = torch.tensor([[0.0, 20.0], [0.0, 20.0]])
    u = torch.tensor([1e-9, 1e-9])
    alone = choose(logits[:1], params(1), u[:1])
    both = choose(logits, RowParams(torch.ones(2), torch.tensor([1.0, 0.5]), torch.zeros(2, dtype=torch.long)), u)
    assert alone.tolist() == [0]
    assert both.tolist() == [0, 1]


def test_row_params_select_keeps_the_chosen_rows():
    p = RowParams(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.9, 0.8]), torch.tensor([0, 5, 7]))
    s = p.select(torch.tensor([2, 0]))
    assert s.temperature.tolist() == [1.0, 0.0]
    assert s.top_p.tolist() == pytest.approx([0.8, 1.0])
    assert s.top_k.tolist() == [7, 0]


# ---------------------------------------------------------------------------------------------- entropy


def test_entropy_of_uniform_logits_is_log_vocab():
    for v in (1, 2, 7, 1000):
        logp, h = log_softmax_and_entropy(torch.full((3, v), 4.2))
        assert h.tolist() == pytest.approx([math.log(v)] * 3, abs=1e-5)
        assert logp.exp().sum(-1).tolist() == pytest.approx([1.0] * 3, abs=1e-5)


def test_entropy_ignores_minus_infinity_logits():
    inf = float("-inf")
    logp, h = log_softmax_and_entropy(torch.tensor([[0.0, inf, 0.0, inf, 0.0], [inf, inf, 3.0, inf, inf]]))
    assert not torch.isnan(h).any()
    assert h.tolist() == pytest.approx([math.log(3), 0.0], abs=1e-6)
    assert logp[0, 1] == inf and logp[1, 2] == pytest.approx(0.0)


def test_entropy_and_logprobs_match_the_definition():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(5, 20, generator=g, dtype=torch.float64) * 3
    logp, h = log_softmax_and_entropy(logits.to(torch.bfloat16))
    assert logp.dtype == torch.float32 and h.shape == (5,)
    ref = torch.distributions.Categorical(logits=logits.to(torch.bfloat16).double())
    assert torch.allclose(h.double(), ref.entropy(), atol=1e-4)
    assert torch.allclose(logp.double(), ref.logits, atol=1e-4)
    _, peaked = log_softmax_and_entropy(torch.tensor([[50.0, 0.0, 0.0]]))
    assert peaked.item() == pytest.approx(0.0, abs=1e-12)

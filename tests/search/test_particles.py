"""Particle filtering: the resampling arithmetic, and the operator on the embedded world."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest

from archon import data
from archon.runtime import Runner
from archon.spec import SpecError, load_spec, parse_spec
from search.particles import ess, logit, resample, softmax
from tests.search.test_beam import run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "particle_filter.yaml"


def test_weights_are_the_logit_of_the_reward_and_normalize_with_a_temperature() -> None:
    assert logit(0.5) == 0.0 and logit(0.8) == pytest.approx(math.log(4))
    assert math.isfinite(logit(0.0)) and math.isfinite(logit(1.0))
    assert softmax([0.0, math.log(3)]) == pytest.approx([0.25, 0.75])
    assert softmax([0.0, math.log(3)], temperature=1e9) == pytest.approx([0.5, 0.5])  # hot: uniform
    assert softmax([0.0, float("nan")]) == [1.0, 0.0]
    assert ess([0.5, 0.5]) == 2.0 and ess([1.0, 0.0]) == 1.0


@pytest.mark.parametrize("how", ["multinomial", "systematic"])
def test_resampling_draws_in_proportion_to_the_weights(how: str) -> None:
    weights, rng = [0.1, 0.2, 0.7], random.Random(3)
    counts = Counter(i for _ in range(2000) for i in resample(weights, 10, rng, how))
    shares = [counts[i] / 20000 for i in range(3)]
    assert shares == pytest.approx(weights, abs=0.02)


def test_systematic_resampling_has_lower_variance_than_multinomial() -> None:
    weights, rng = [0.25, 0.25, 0.5], random.Random(0)

    def spread(how: str) -> float:
        draws = [Counter(resample(weights, 8, rng, how))[2] for _ in range(2000)]
        mean = sum(draws) / len(draws)
        return sum((d - mean) ** 2 for d in draws) / len(draws)

    assert spread("systematic") < 0.5 * spread("multinomial")


@pytest.fixture(scope="module")
def filtered():
    return run(load_spec(EXAMPLE), data.load("arith", "dev")[:4])


def test_it_returns_exactly_p_finished_particles_best_first(filtered) -> None:
    summary, records, _, reuse = filtered
    assert summary["errors"] == 0
    for r in records:
        cands = r["candidates"]
        assert len(cands) == 8 and all(c["answer"] is not None and "####" in c["text"] for c in cands)
        weights = [c["scores"]["weight"] for c in cands]
        assert weights == sorted(weights, reverse=True)
        assert sum(c["scores"]["share"] for c in cands) == pytest.approx(1.0)
        event = next(e for e in r["trace"] if e["op"] == "particle_filter")
        assert event["rounds_log"] and all(len(h["log_weights"]) == 8 for h in event["rounds_log"])
        tree = event["tree"]  # every particle's step as a node; the resampled ones kept
        first = [n for n in tree if n["parent"] is None]
        assert len(first) == 8 and all(n["parent"] is None or n["parent"] < n["id"] for n in tree)
        assert all(0 <= n["score"] <= 1 for n in tree if not n.get("rollout"))  # the PRM's rewards
        drawn = {i for h in event["rounds_log"][:1] for i in (h["drawn"] or range(8))}
        assert sum(n["kept"] for n in first) == len(drawn)  # resampled after round 1: kept
        assert sum(n["finished"] for n in tree) >= len(cands)
    assert reuse["reused"] > 2 * reuse["computed"]


def test_without_a_prm_the_weights_are_the_policys_self_certainty() -> None:
    spec = load_spec(EXAMPLE).model_dump(exclude_none=True)
    spec["pipeline"][0]["params"].pop("prm")
    spec["pipeline"][0]["params"]["finished"] = "remove"
    summary, records, _, _ = run(parse_spec(spec), data.load("arith", "dev")[:2])
    assert summary["errors"] == 0
    for r in records:
        assert len(r["candidates"]) == 8 and all(c["scores"]["weight"] <= 0 for c in r["candidates"])  # log-probs
        event = next(e for e in r["trace"] if e["op"] == "particle_filter")
        assert event["weights_by"] == "self_certainty"


def test_a_budget_is_never_exceeded_and_only_finished_particles_come_back() -> None:
    spec = load_spec(EXAMPLE).model_dump(exclude_none=True)
    limit = 2e9
    summary, records, ledger, _ = run(
        parse_spec({**spec, "budget": {"per_problem": {"flops": limit}}}), data.load("arith", "dev")[:3]
    )
    assert ledger.overruns == 0 and summary["budget"]["problems_refused"] >= 1
    for r in records:
        assert r["cost"]["flops"] <= limit and len(r["candidates"]) <= 8
        assert all(c["answer"] is not None for c in r["candidates"])


GIBBS = EXAMPLE.parent / "particle_gibbs.yaml"


def test_particle_gibbs_keeps_each_passes_reference_among_the_next_passes_particles() -> None:
    summary, records, _, _ = run(load_spec(GIBBS), data.load("arith", "dev")[:3])
    assert summary["errors"] == 0
    for r in records:
        event = next(e for e in r["trace"] if e["op"] == "particle_gibbs")
        passes = event["passes"]
        assert len(passes) == 3 and len(r["candidates"]) == 8
        assert all(c["answer"] is not None for c in r["candidates"])
        # the last pass was conditioned on the reference drawn after the second: it survives every resampling
        assert passes[1]["reference_answer"] in [c["answer"] for c in r["candidates"]]


def test_particle_gibbs_needs_room_for_the_reference(tmp_path: Path) -> None:
    bad = tmp_path / "one.yaml"
    bad.write_text(GIBBS.read_text().replace("particles: 8", "particles: 1"))
    with pytest.raises(SpecError, match="particles >= 2"):
        Runner(load_spec(bad))

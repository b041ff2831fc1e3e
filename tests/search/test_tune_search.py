"""examples/tune_search.yaml: the tuner chooses between sampling and step-level search under a budget."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from archon.spec import load_spec
from archon.spec.graph import problems
from archon.tune.space import space_names
from tests.archon.test_cli import archon

SPEC = Path(__file__).resolve().parents[2] / "examples" / "tune_search.yaml"


def test_the_space_offers_sampling_and_search_with_their_knobs() -> None:
    spec = load_spec(SPEC)
    assert problems(spec) == []
    names = set(space_names(spec))
    assert {
        "answer.op",
        "answer.beam_search.n",
        "answer.beam_search.width",
        "answer.particle_filter.particles",
    } <= names
    assert spec.pipeline[0].op.tune.choices == [
        "best_of_n",
        "weighted_vote",
        "beam_search",
        "dvts",
        "particle_filter",
        "particle_gibbs",
    ]


@pytest.mark.slow
def test_a_short_study_tries_every_technique_and_writes_a_runnable_best(tmp_path: Path) -> None:
    flags = ["--limit", "2", "--trials", "11", "--minibatch", "2", "--out", str(tmp_path), "--json"]
    out = archon("tune", str(SPEC), *flags)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["trials"].get("complete") == 11 and result["best"] is not None, result["trials"]
    study = optuna.load_study(study_name="tune_search", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    ops = {t.params["answer.op"] for t in study.trials if t.params}
    # the startup design covers every op
    assert ops == {"best_of_n", "weighted_vote", "beam_search", "dvts", "particle_filter", "particle_gibbs"}
    run = archon("run", str(tmp_path / "best.yaml"), "--limit", "2", "--json")
    assert run.returncode == 0, run.stderr[-2000:]


def test_a_search_trial_is_charged_its_prefix_reuse_as_a_run_is(tmp_path: Path) -> None:
    """A study's engines report nominal usage (no cached token); a trial is credited what each problem computed.

    Without that credit a beam search trial was charged every step's whole prefix again (about 9x the
    prefill a run computes), so the tuner saw search as far dearer than `archon run` charges it.
    """
    import asyncio

    from archon import data
    from archon.runtime import Runner
    from archon.tune.evaluate import Evaluator

    spec = load_spec(Path(__file__).resolve().parents[2] / "examples" / "beam_search.yaml")
    few = data.load("arith", "dev")[:3]
    evaluator = Evaluator(spec, cache_path=tmp_path / "cache.db")
    try:
        trial = evaluator.run(spec, few)
        again = evaluator.run(spec, few)  # from the cache: charged the same
        evaluator.resources.credit = "reported"  # what trials were charged before: no reuse credited
        uncredited = evaluator.run(spec, few)
    finally:
        evaluator.close()
    runner = Runner(spec)
    try:
        run = asyncio.run(runner.run(few))["per_problem"]
    finally:
        asyncio.run(runner.aclose())
    assert trial.cost == again.cost and uncredited.accuracy == trial.accuracy
    # the ideal cache credits a little more than the engine's block-granular one: within 3%
    assert run["flops"] * 0.97 <= trial.cost["flops"] <= run["flops"] * 1.001
    assert uncredited.cost["flops"] > 1.3 * trial.cost["flops"]

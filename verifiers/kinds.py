"""The built-in verifier kinds, each registered with its builder (``verifiers:`` entries of a spec).

A spec's ``verifiers: {name: {kind: ..., model: ..., engine: ..., options: {...}}}`` is built by the
builder registered under ``kind`` in :data:`archon.core.registry.VERIFIER_KINDS`, from a
:class:`~archon.core.VerifierDecl`. A kind that reads an engine (the judges, self-certainty's teacher
forcing) gets the declared engine, charged to the (node, problem) that asks; model-based verifiers are
built once and charge through ``charged``. Builders import their heavy dependencies when called.
"""

from __future__ import annotations

from typing import Any

from archon.core import VerifierDecl
from archon.core.registry import VERIFIER_KINDS, accepts
from verifiers.noisy import check_options as check_noisy_options

REWARD_OPTIONS = (
    "config",
    "aggregation",
    "device",
    "max_batch",
    "chunk_tokens",
    "incremental",
    "kv_cache_mb",
    "memo_size",
)
"""Options of ``reward_model`` (keyword arguments of :class:`~verifiers.reward.RewardModel`)."""
JUDGE_OPTIONS = {
    "yes_no_judge": ("template", "yes", "no"),
    "generative_judge": ("samples", "max_tokens", "temperature", "template"),
}
"""Options of the judges (keyword arguments of their classes, the engine aside)."""


def _metric(options: dict[str, Any]) -> None:
    from verifiers.certainty import HIGHER_IS_BETTER

    metric = options.get("metric", "mean_logprob")
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"@options.metric: one of {', '.join(HIGHER_IS_BETTER)}, got {metric!r}")


@VERIFIER_KINDS.register("reward_model", check=accepts(*REWARD_OPTIONS), model="optional", engine="none")
def reward_model(decl: VerifierDecl) -> Any:
    """A learned outcome or process reward model (default ``tiny-prm``), read as its config declares."""
    from verifiers.reward import RewardModel

    return RewardModel(decl.model or "tiny-prm", name=decl.name, **decl.options)


@VERIFIER_KINDS.register("arith_steps", check=accepts("delimiter"), model="none", engine="none")
def arith_steps(decl: VerifierDecl) -> Any:
    """The exact arith step checker (a tool verifier: no model, no FLOPs)."""
    from verifiers.steps import ArithStepChecker

    checker = ArithStepChecker(**decl.options)
    checker.name = decl.name
    return checker


@VERIFIER_KINDS.register("noisy_arith_steps", check=check_noisy_options, model="none", engine="none")
def noisy_arith_steps(decl: VerifierDecl) -> Any:
    """A synthetic instrument: the exact step checker with a documented noise model (not a learned verifier)."""
    from verifiers.noisy import NoisyStepChecker

    return NoisyStepChecker(name=decl.name, **decl.options)


@VERIFIER_KINDS.register("answer", check=accepts(), model="none", engine="none")
def answer(decl: VerifierDecl) -> Any:
    """The oracle: 1.0 when a candidate's answer is the reference answer."""
    from verifiers.reference import ReferenceAnswer

    return ReferenceAnswer(decl.name)


@VERIFIER_KINDS.register("yes_no_judge", check=accepts(*JUDGE_OPTIONS["yes_no_judge"]), model="none", engine="required")
def yes_no_judge(decl: VerifierDecl) -> Any:
    """An LLM judge read by teacher forcing: P("Yes") to "is this solution correct?"."""
    from verifiers.judge import YesNoJudge

    return YesNoJudge(_engine(decl), name=decl.name, **decl.options)


@VERIFIER_KINDS.register(
    "generative_judge", check=accepts(*JUDGE_OPTIONS["generative_judge"]), model="none", engine="required"
)
def generative_judge(decl: VerifierDecl) -> Any:
    """An LLM that checks a solution in writing; the score is the share of verdicts saying correct."""
    from verifiers.judge import GenerativeVerifier

    return GenerativeVerifier(_engine(decl), name=decl.name, **decl.options)


@VERIFIER_KINDS.register("self_certainty", check=accepts("metric", values=_metric), model="none", engine="optional")
def self_certainty(decl: VerifierDecl) -> Any:
    """The policy's own certainty (mean logprob, perplexity ...), teacher-forced by ``engine`` when needed."""
    from verifiers.certainty import SelfCertainty

    certainty = SelfCertainty(engine=decl.engine, **decl.options)
    certainty.name = decl.name
    return certainty


def _engine(decl: VerifierDecl) -> Any:
    if decl.engine is None:
        raise ValueError(f"verifier {decl.name!r}: this kind needs an engine (its `engine:` field)")
    return decl.engine

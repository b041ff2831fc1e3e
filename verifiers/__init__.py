"""Judgement: answer checking, step checkers, learned reward models, LLM judges, self-certainty, a code sandbox.

Public names are imported on first use (``verifiers.RewardModel`` loads torch and transformers), so
``import verifiers`` stays light.
"""

from __future__ import annotations

from archon.core.lazy import lazy_exports

_EXPORTS = {
    "extract_answer": "verifiers.answers",
    "normalize_answer": "verifiers.answers",
    "answers_equal": "verifiers.answers",
    "run_unit_tests": "verifiers.sandbox",
    "TestOutcome": "verifiers.sandbox",
    "ArithStepChecker": "verifiers.steps",
    "NoisyStepChecker": "verifiers.noisy",
    "RewardModel": "verifiers.reward",
    "RewardConfig": "verifiers.reward",
    "SelfCertainty": "verifiers.certainty",
    "YesNoJudge": "verifiers.judge",
    "GenerativeVerifier": "verifiers.judge",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("verifiers", _EXPORTS, globals())

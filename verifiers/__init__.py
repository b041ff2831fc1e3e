"""Judgement: answer checking, step checkers, learned reward models, LLM judges, self-certainty, a code sandbox.

Public names are imported on first use (``verifiers.RewardModel`` loads torch and transformers), so
``import verifiers`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "extract_answer": "verifiers.answers",
    "normalize_answer": "verifiers.answers",
    "answers_equal": "verifiers.answers",
    "run_unit_tests": "verifiers.sandbox",
    "TestOutcome": "verifiers.sandbox",
    "ArithStepChecker": "verifiers.steps",
    "RewardModel": "verifiers.reward",
    "RewardConfig": "verifiers.reward",
    "SelfCertainty": "verifiers.certainty",
    "YesNoJudge": "verifiers.judge",
    "GenerativeVerifier": "verifiers.judge",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'verifiers' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

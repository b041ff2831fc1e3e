"""The shared kernel: data types, protocols and errors. Imports no torch."""

from archon.core.charging import ChargedEngine, Prices
from archon.core.errors import ArchonError, DataError, ModelNotFoundError
from archon.core.generation import (
    Completion,
    Engine,
    EngineError,
    FinishReason,
    GenRequest,
    GenResult,
    Prompt,
    RequestError,
    ScoreResult,
    UnsupportedFeatureError,
    Usage,
    prompt_kind,
)
from archon.core.problem import Message, Problem
from budgets import ModelFacts

__all__ = [
    "ArchonError",
    "ChargedEngine",
    "Completion",
    "DataError",
    "Engine",
    "EngineError",
    "FinishReason",
    "GenRequest",
    "GenResult",
    "Message",
    "ModelFacts",
    "ModelNotFoundError",
    "Prices",
    "Problem",
    "Prompt",
    "RequestError",
    "ScoreResult",
    "UnsupportedFeatureError",
    "Usage",
    "prompt_kind",
]

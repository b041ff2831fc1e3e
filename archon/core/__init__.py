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
from archon.core.state import Context, State
from archon.core.verification import (
    AGGREGATIONS,
    Aggregation,
    Candidate,
    OutcomeVerifier,
    ProcessVerifier,
    aggregate,
    score_outcomes,
    score_processes,
)
from budgets import ModelFacts

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "ArchonError",
    "Candidate",
    "ChargedEngine",
    "Completion",
    "Context",
    "DataError",
    "Engine",
    "EngineError",
    "FinishReason",
    "GenRequest",
    "GenResult",
    "Message",
    "ModelFacts",
    "ModelNotFoundError",
    "OutcomeVerifier",
    "Prices",
    "Problem",
    "ProcessVerifier",
    "Prompt",
    "RequestError",
    "ScoreResult",
    "State",
    "UnsupportedFeatureError",
    "Usage",
    "aggregate",
    "prompt_kind",
    "score_outcomes",
    "score_processes",
]

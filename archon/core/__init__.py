"""The shared kernel: data types, protocols, errors, and the operator kit. Imports no torch."""

from archon.core.anytime import draw_within_budget, within_budget
from archon.core.charging import ChargedEngine, Prices
from archon.core.errors import ArchonError, DataError, ModelNotFoundError
from archon.core.generation import (
    Completion,
    Engine,
    EngineBase,
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
from archon.core.operators import EngineRef, OperatorParams, RetrieverRef, VerifierRef
from archon.core.problem import Message, Problem
from archon.core.state import Context, State
from archon.core.verification import (
    AGGREGATIONS,
    Aggregation,
    Candidate,
    Chargeable,
    OutcomeVerifier,
    ProcessVerifier,
    Verifier,
    VerifierDecl,
    VerifierKind,
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
    "Chargeable",
    "ChargedEngine",
    "Completion",
    "Context",
    "DataError",
    "Engine",
    "EngineBase",
    "EngineError",
    "EngineRef",
    "FinishReason",
    "GenRequest",
    "GenResult",
    "Message",
    "ModelFacts",
    "ModelNotFoundError",
    "OperatorParams",
    "OutcomeVerifier",
    "Prices",
    "Problem",
    "ProcessVerifier",
    "Prompt",
    "RequestError",
    "RetrieverRef",
    "ScoreResult",
    "State",
    "UnsupportedFeatureError",
    "Usage",
    "Verifier",
    "VerifierDecl",
    "VerifierKind",
    "VerifierRef",
    "aggregate",
    "draw_within_budget",
    "prompt_kind",
    "score_outcomes",
    "score_processes",
    "within_budget",
]

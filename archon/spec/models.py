"""The pipeline spec: pydantic models of a YAML/JSON spec file.

Sections: ``engines`` (named models), ``verifiers``, ``retrievers``, ``dataset``, ``budget``,
``pipeline`` (nodes: ``id``, ``op``, ``inputs``, ``params``) and ``tune``. Any param — and a node's
``op`` and ``enabled`` — may be ``{tune: {...}}`` instead of a value (:class:`Tunable`), which makes it
part of the tuning search space.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from samplers.engines import EngineConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TuneRange(_Strict):
    """A search dimension: ``int`` / ``float`` in ``[low, high]`` (``log`` scale optional), ``choice``, ``bool``."""

    type: Literal["int", "float", "choice", "bool"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> TuneRange:
        if self.type in ("int", "float"):
            if self.low is None or self.high is None:
                raise ValueError(f"a tuned {self.type} needs low and high")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) is above high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale range needs low > 0")
        elif self.type == "choice":
            if not self.choices:
                raise ValueError("a tuned choice needs a non-empty list of choices")
        elif self.low is not None or self.high is not None or self.choices:
            raise ValueError("a tuned bool takes no low, high or choices")
        return self


class Tunable(_Strict):
    """``{tune: {...}}``: a value the tuner chooses."""

    tune: TuneRange


class NodeSpec(_Strict):
    """One node of the pipeline DAG."""

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    op: str | Tunable
    inputs: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool | Tunable = True

    @field_validator("params")
    @classmethod
    def _tunables(cls, params: dict[str, Any]) -> dict[str, Any]:
        return {k: Tunable(**v) if isinstance(v, dict) and set(v) == {"tune"} else v for k, v in params.items()}


class VerifierSpec(_Strict):
    """A named verifier: its kind, the model or engine it uses, its options."""

    kind: Literal["reward_model", "arith_steps", "answer", "yes_no_judge", "generative_judge", "self_certainty"]
    model: str | None = None
    engine: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class RetrieverSpec(_Strict):
    """A named retriever (the retrieval issue defines the kinds)."""

    kind: str
    options: dict[str, Any] = Field(default_factory=dict)


class DatasetSpec(_Strict):
    """The data set a run evaluates: an embedded name or a JSONL path, a split and an optional limit."""

    name: str
    split: str = "dev"
    limit: int | None = Field(None, ge=1)


class BudgetSpec(_Strict):
    """Limits per problem and per run (``flops``, ``tokens``, ``calls``, ``seconds``, ``latency``, ``dollars``)."""

    per_problem: dict[str, float] = Field(default_factory=dict)
    per_run: dict[str, float] = Field(default_factory=dict)
    hardware: str | None = Field(None, description="hardware profile for idealized latency (h100, a100, l4, cpu ...)")


class TuneSpec(_Strict):
    """What the tuner optimises (used by ``archon tune``)."""

    objectives: list[str] = Field(default_factory=lambda: ["accuracy"])
    directions: list[Literal["maximize", "minimize"]] | None = None
    trials: int = Field(20, ge=1)
    storage: str | None = None
    study: str | None = None
    sampler: str = "tpe"
    minibatch: int | None = Field(None, ge=1)


class Spec(_Strict):
    """A whole pipeline spec."""

    extends: str | None = Field(None, description="a spec file this one overrides (resolved when loading)")
    engines: dict[str, EngineConfig] = Field(default_factory=dict)
    verifiers: dict[str, VerifierSpec] = Field(default_factory=dict)
    retrievers: dict[str, RetrieverSpec] = Field(default_factory=dict)
    dataset: DatasetSpec | None = None
    budget: BudgetSpec | None = None
    pipeline: list[NodeSpec] = Field(min_length=1)
    tune: TuneSpec | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Spec:
        seen: set[str] = set()
        for node in self.pipeline:
            if node.id in seen:
                raise ValueError(f"node id {node.id!r} is used twice")
            seen.add(node.id)
        return self

    def tunables(self) -> dict[str, TuneRange]:
        """Every tuned value, by its spec path (``pipeline[1].params.n``)."""
        out: dict[str, TuneRange] = {}
        for i, node in enumerate(self.pipeline):
            if isinstance(node.op, Tunable):
                out[f"pipeline[{i}].op"] = node.op.tune
            if isinstance(node.enabled, Tunable):
                out[f"pipeline[{i}].enabled"] = node.enabled.tune
            for k, v in node.params.items():
                if isinstance(v, Tunable):
                    out[f"pipeline[{i}].params.{k}"] = v.tune
        return out

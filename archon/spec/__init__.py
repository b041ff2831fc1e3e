"""Pipeline specs: pydantic models, loading (``extends:``), and the validated DAG."""

from archon.spec.graph import build_graph, compile_pipeline, output_node, problems
from archon.spec.load import SpecError, load_spec, parse_spec, read_spec_data, spec_path
from archon.spec.models import (
    BudgetSpec,
    DatasetSpec,
    NodeSpec,
    RetrieverSpec,
    Spec,
    Tunable,
    TuneRange,
    TuneSpec,
    VerifierSpec,
)

__all__ = [
    "BudgetSpec",
    "DatasetSpec",
    "NodeSpec",
    "RetrieverSpec",
    "Spec",
    "SpecError",
    "Tunable",
    "TuneRange",
    "TuneSpec",
    "VerifierSpec",
    "build_graph",
    "compile_pipeline",
    "load_spec",
    "output_node",
    "parse_spec",
    "problems",
    "read_spec_data",
    "spec_path",
]

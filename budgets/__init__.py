"""Compute accounting: cost model, budgets and the ledger (imports nothing of the project)."""

from budgets.cost import CostModel
from budgets.facts import DTYPE_BYTES, ModelFacts

__all__ = ["DTYPE_BYTES", "CostModel", "ModelFacts"]

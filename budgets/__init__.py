"""Compute accounting: cost model, budgets and the ledger (imports nothing of the project)."""

from budgets.cost import CostModel
from budgets.errors import BudgetError, BudgetExhausted, ProfileError
from budgets.facts import DTYPE_BYTES, ModelFacts
from budgets.hardware import HardwareProfile, load_profiles, profile

__all__ = [
    "DTYPE_BYTES",
    "BudgetError",
    "BudgetExhausted",
    "CostModel",
    "HardwareProfile",
    "ModelFacts",
    "ProfileError",
    "load_profiles",
    "profile",
]

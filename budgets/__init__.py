"""Compute accounting: cost model, budgets and the ledger (imports nothing of the project)."""

from budgets.cost import CostModel
from budgets.errors import BudgetError, BudgetExhausted, ProfileError
from budgets.facts import DTYPE_BYTES, ModelFacts
from budgets.hardware import HardwareProfile, load_profiles, profile
from budgets.ledger import COSTS, LIMITS, Budget, Cost, Ledger, Limits, Reservation, Scope

__all__ = [
    "COSTS",
    "DTYPE_BYTES",
    "LIMITS",
    "Budget",
    "BudgetError",
    "BudgetExhausted",
    "Cost",
    "CostModel",
    "HardwareProfile",
    "Ledger",
    "Limits",
    "ModelFacts",
    "ProfileError",
    "Reservation",
    "Scope",
    "load_profiles",
    "profile",
]

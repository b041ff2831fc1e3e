"""Errors of the accounting layer (one-line messages meant for the user)."""

from __future__ import annotations


class BudgetError(Exception):
    """Base class of the accounting layer's errors."""


class ProfileError(BudgetError, ValueError):
    """A hardware profile is unknown or malformed; the message names the file and the field."""


class BudgetExhausted(BudgetError):
    """A reservation would break a limit of the active budget; nothing was charged and nothing ran."""

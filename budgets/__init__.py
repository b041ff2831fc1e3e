"""Compute accounting: cost model, budgets and the ledger (imports nothing of the project)."""

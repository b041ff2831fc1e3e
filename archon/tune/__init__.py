"""Tuning pipelines with Optuna under compute budgets: the search space, trials, studies and reports.

Public names are imported on first use, so ``import archon.tune`` stays light.
"""

from __future__ import annotations

from archon.core.lazy import lazy_exports

_EXPORTS = {
    "suggest": "archon.tune.space",
    "concretize": "archon.tune.space",
    "space_names": "archon.tune.space",
    "cover": "archon.tune.startup",
    "write_report": "archon.tune.report",
    "load_study": "archon.tune.report",
    "pareto_front": "archon.tune.report",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("archon.tune", _EXPORTS, globals())

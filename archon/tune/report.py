"""Plots of a finished tuning study: the accuracy-cost Pareto front, every trial, and parameter importances.

The report reads each trial's ``user_attrs`` (``accuracy``, ``flops``, ``latency``, ..., ``feasible``) rather
than its objective values, so single- and multi-objective studies get the same front: the non-dominated
feasible trials under (maximize accuracy, minimize cost). The cost axis is the study's second objective
when it has one, FLOPs per problem otherwise.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archon.core.errors import ArchonError

__all__ = ["StudyNotFoundError", "load_study", "pareto_front", "write_report"]

INSTALL_HINT = 'pip install "archon-its[report]" (matplotlib and plotly)'
_AXIS_LABELS = {
    "flops": "FLOPs per problem",
    "latency": "idealized latency per problem (s)",
    "seconds": "wall seconds per problem",
    "tokens": "tokens per problem",
    "dollars": "dollars per problem",
}


class StudyNotFoundError(ArchonError, ValueError):
    """A study directory or storage holds no study, or several where one was expected."""


def load_study(study_dir: Path, *, storage: str | None = None, study_name: str | None = None) -> optuna.Study:
    """Open the study that ``archon tune`` wrote.

    Args:
        study_dir: the study directory; its ``optuna.db`` is the storage unless ``storage`` is given.
        storage: any Optuna RDB URL (``postgresql://...``) instead of the directory's SQLite file.
        study_name: the study to open; may be left out when the storage holds exactly one.

    Raises:
        StudyNotFoundError: no ``optuna.db``, no study, several studies and no name, or an unknown name.
    """
    if storage is None:
        db = Path(study_dir) / "optuna.db"
        if not db.is_file():
            raise StudyNotFoundError(f"{db}: no such file; run `archon tune` into {study_dir} or pass a storage URL")
        storage, where = f"sqlite:///{db}", str(db)
    else:
        where = _redacted(storage)
    names = sorted(optuna.get_all_study_names(storage=storage))
    if study_name is None and len(names) != 1:
        found = f"{len(names)} studies ({', '.join(names)})" if names else "no study"
        raise StudyNotFoundError(f"{where}: holds {found}; name the one to open")
    if study_name is not None and study_name not in names:
        raise StudyNotFoundError(f"{where}: no study named {study_name!r}; it holds {names or 'none'}")
    return optuna.load_study(study_name=study_name or names[0], storage=storage)


def pareto_front(trials: Iterable[FrozenTrial], *, cost: str = "flops") -> list[FrozenTrial]:
    """The feasible complete trials that no other one beats on both accuracy (higher) and ``cost`` (lower).

    Both numbers come from the trial's ``user_attrs``; trials lacking either are ignored. Feasibility is the
    ``feasible`` user attribute, or, without it, all of the trial's constraint values being at most zero.
    Trials with equal accuracy and cost do not dominate each other, so ties are all kept.
    The front is sorted by cost, cheapest first.

    Example:
        >>> from optuna.trial import create_trial
        >>> def trial(accuracy, flops, feasible=True):
        ...     attrs = {"accuracy": accuracy, "flops": flops, "feasible": feasible}
        ...     return create_trial(value=accuracy, user_attrs=attrs)
        >>> trials = [trial(0.5, 1e6), trial(0.4, 2e6), trial(0.8, 4e6), trial(0.9, 1e6, feasible=False)]
        >>> [(t.user_attrs["accuracy"], t.user_attrs["flops"]) for t in pareto_front(trials)]
        [(0.5, 1000000.0), (0.8, 4000000.0)]
    """
    points = []
    for t in trials:
        xy = _xy(t, cost)
        if t.state == TrialState.COMPLETE and xy is not None and _feasible(t):
            points.append((xy[0], -xy[1], t.number, t))
    points.sort(key=lambda p: p[:3])
    front: list[FrozenTrial] = []
    best: tuple[float, float] | None = None  # (cost, -accuracy) of the last trial kept
    for c, neg_a, _, t in points:
        # Cheaper (or as cheap and more accurate) trials come first: a trial is on the front when it beats
        # every earlier one on accuracy, or exactly ties the last one kept.
        if best is None or neg_a < best[1] or (c, neg_a) == best:
            front.append(t)
            best = (c, neg_a)
    return front


def write_report(study: optuna.Study, out_dir: Path, *, min_importance_trials: int = 10) -> dict[str, Any]:
    """Write the study's plots into ``out_dir`` and return what was written.

    Files: ``pareto_front.png`` and ``pareto_front.html`` (interactive; hover shows each trial's number and
    params), ``trials.png`` (every trial's accuracy against cost: feasible, infeasible and pruned apart, the
    budget as a vertical line, the front highlighted) and ``importance.png`` (parameter importances for
    accuracy, by PED-ANOVA). A plot that cannot be drawn is skipped and a note says why.

    Args:
        study: a study written by ``archon tune``.
        out_dir: created if missing.
        min_importance_trials: fewer complete trials with an accuracy than this skip the importance plot.

    Returns:
        ``{"files": {name: Path}, "front": [{"number", "accuracy", "flops", <cost>, "params", ...}],
        "importances": {param: importance}, "notes": [str], "cost": str, "trials": {state: count}}``.
    """
    for module in ("matplotlib.figure", "plotly.graph_objects"):  # fail before writing anything
        _require(module)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    objectives = study.user_attrs.get("objectives") or ["accuracy"]
    cost = objectives[1] if len(objectives) > 1 else "flops"
    limit = (study.user_attrs.get("budget") or {}).get(cost)
    trials = study.get_trials(deepcopy=False)
    front = pareto_front(trials, cost=cost)
    files: dict[str, Path] = {}
    notes: list[str] = []

    if front:
        files["front_png"] = _save(_front_figure(front, cost=cost), out_dir / "pareto_front.png")
        files["front_html"] = out_dir / "pareto_front.html"
        _front_html(front, cost=cost).write_html(files["front_html"], include_plotlyjs=True, full_html=True)
    else:
        notes.append(f"pareto_front skipped: no complete feasible trial has an accuracy and {cost}")
    drawn = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and _xy(t, cost)]
    if drawn:
        files["trials_png"] = _save(_trials_figure(drawn, front, cost=cost, limit=limit), out_dir / "trials.png")
    else:
        notes.append(f"trials skipped: no complete or pruned trial has an accuracy and {cost}")
    importances, why_not = _importances(study, min_trials=min_importance_trials)
    if why_not:
        notes.append(f"importance skipped: {why_not}")
    else:
        files["importance_png"] = _save(_importance_figure(importances), out_dir / "importance.png")

    return {
        "files": files,
        "front": [_summary(t, cost) for t in front],
        "importances": importances,
        "notes": notes,
        "cost": cost,
        "trials": {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState if s.is_finished()},
    }


def _require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"archon report draws with matplotlib and plotly: {INSTALL_HINT}") from exc


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL sqlalchemy can parse: say only its scheme
        return url.split("://", 1)[0] + "://..."


def _attr(trial: FrozenTrial, key: str) -> float | None:
    value = trial.user_attrs.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _xy(trial: FrozenTrial, cost: str) -> tuple[float, float] | None:
    accuracy, spent = _attr(trial, "accuracy"), _attr(trial, cost)
    return None if accuracy is None or spent is None else (spent, accuracy)


def _feasible(trial: FrozenTrial) -> bool:
    if "feasible" in trial.user_attrs:
        return bool(trial.user_attrs["feasible"])
    return all(v <= 0 for v in trial.constraints.values())


def _summary(trial: FrozenTrial, cost: str) -> dict[str, Any]:
    attrs = trial.user_attrs
    out = {"number": trial.number, "accuracy": attrs["accuracy"], "flops": attrs.get("flops"), cost: attrs[cost]}
    if "full_accuracy" in attrs:
        out["full_accuracy"] = attrs["full_accuracy"]
    return {**out, "params": dict(trial.params)}


def _label(cost: str) -> str:
    return _AXIS_LABELS.get(cost, f"{cost} per problem")


def _figure(width: float = 7.0, height: float = 4.5) -> Any:
    """A matplotlib figure drawn by Agg, with no pyplot state."""
    return _require("matplotlib.figure").Figure(figsize=(width, height), layout="constrained")


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=120)
    return path


def _front_figure(front: list[FrozenTrial], *, cost: str) -> Any:
    figure = _figure()
    ax = figure.subplots()
    x, y = zip(*(_xy(t, cost) for t in front), strict=True)
    ax.plot(x, y, drawstyle="steps-post", marker="o", color="tab:red")
    for t, xi, yi in zip(front, x, y, strict=True):
        ax.annotate(f"#{t.number}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xscale="log", xlabel=_label(cost), ylabel="accuracy", title="Pareto front (feasible trials)")
    ax.margins(0.08)  # room for the labels
    ax.grid(alpha=0.3)
    return figure


def _front_html(front: list[FrozenTrial], *, cost: str) -> Any:
    go = _require("plotly.graph_objects")

    def hover(t: FrozenTrial) -> str:
        lines = [f"trial #{t.number}", f"accuracy {t.user_attrs['accuracy']:.4g}", f"{cost} {t.user_attrs[cost]:.4g}"]
        if "full_accuracy" in t.user_attrs:
            lines.append(f"full accuracy {t.user_attrs['full_accuracy']:.4g}")
        params = [f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in t.params.items()]
        return "<br>".join(lines + params)

    x, y = zip(*(_xy(t, cost) for t in front), strict=True)
    text = [hover(t) for t in front]
    figure = go.Figure(
        go.Scatter(x=x, y=y, mode="lines+markers", line_shape="hv", text=text, hovertemplate="%{text}<extra></extra>")
    )
    figure.update_layout(title="Pareto front (feasible trials)", xaxis_title=_label(cost), yaxis_title="accuracy")
    return figure.update_xaxes(type="log")


def _trials_figure(trials: list[FrozenTrial], front: list[FrozenTrial], *, cost: str, limit: float | None) -> Any:
    figure = _figure()
    ax = figure.subplots()
    groups = {
        "feasible": [t for t in trials if t.state == TrialState.COMPLETE and _feasible(t)],
        "infeasible": [t for t in trials if t.state == TrialState.COMPLETE and not _feasible(t)],
        "pruned": [t for t in trials if t.state == TrialState.PRUNED],
        "Pareto front": front,
    }
    styles = {
        "feasible": {"color": "tab:blue", "marker": "o", "alpha": 0.6},
        "infeasible": {"color": "tab:orange", "marker": "x"},
        "pruned": {"color": "tab:gray", "marker": ".", "alpha": 0.5},
        "Pareto front": {"facecolors": "none", "edgecolors": "tab:red", "marker": "o", "s": 90, "linewidths": 1.5},
    }
    for name, group in groups.items():
        if group:
            x, y = zip(*(_xy(t, cost) for t in group), strict=True)
            ax.scatter(x, y, label=f"{name} ({len(group)})", **styles[name])
    if limit is not None:
        ax.axvline(limit, color="black", linestyle="--", label=f"budget ({limit:.3g})")
    ax.set(xscale="log", xlabel=_label(cost), ylabel="accuracy", title="Accuracy against cost, every trial")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def _importances(study: optuna.Study, *, min_trials: int) -> tuple[dict[str, float], str | None]:
    """PED-ANOVA importances for accuracy, or the reason they are not worth drawing."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trials = [t for t in complete if _attr(t, "accuracy") is not None]
    params = sorted({p for t in trials for p in t.params})
    if len(trials) < max(min_trials, 2):
        return {}, f"{len(trials)} complete trials with an accuracy; at least {max(min_trials, 2)} are needed"
    if len(params) < 2:
        return {}, f"the study tunes {len(params)} parameter(s); importances need at least two"
    # PED-ANOVA compares the best trials with all of them and wants about five among the best.
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=min(0.5, max(0.1, 5 / len(trials))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "lower target is better": intended, accuracy is negated
        importances = optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=lambda t: -t.user_attrs.get("accuracy", math.nan)
        )
    if not any(importances.values()):
        return {}, "every importance is zero (accuracy did not separate the best trials)"
    return {k: float(v) for k, v in importances.items()}, None


def _importance_figure(importances: dict[str, float]) -> Any:
    figure = _figure(height=1.5 + 0.35 * len(importances))
    ax = figure.subplots()
    names = list(importances)[::-1]  # largest at the top
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set(xlabel="importance (PED-ANOVA)", title="Parameter importance for accuracy")
    return figure


class StudyView:
    """A study in a notebook: every trial's accuracy against cost (the front highlighted), importances, a table.

    Example (in a notebook): ``StudyView(load_study(Path("studies/tune_arith")))`` displays itself.
    """

    def __init__(self, study: optuna.Study, *, min_importance_trials: int = 10) -> None:
        self.study, self.min_importance_trials = study, min_importance_trials

    def _repr_html_(self) -> str:
        import base64
        import io
        from html import escape

        objectives = self.study.user_attrs.get("objectives") or ["accuracy"]
        cost = objectives[1] if len(objectives) > 1 else "flops"
        limit = (self.study.user_attrs.get("budget") or {}).get(cost)
        trials = self.study.get_trials(deepcopy=False)
        front = pareto_front(trials, cost=cost)
        on_front = {t.number for t in front}
        images = []
        drawn = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and _xy(t, cost)]
        figures = [_trials_figure(drawn, front, cost=cost, limit=limit)] if drawn else []
        importances, why_not = _importances(self.study, min_trials=self.min_importance_trials)
        if not why_not:
            figures.append(_importance_figure(importances))
        for figure in figures:
            buf = io.BytesIO()
            figure.savefig(buf, format="png", dpi=90)
            images.append(f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">')
        rows = []
        for t in trials:
            acc, c = _attr(t, "accuracy"), _attr(t, cost)
            params = ", ".join(f"{k}={v}" for k, v in t.params.items())
            star = "★" if t.number in on_front else ""
            cells = (t.number, t.state.name.lower(), "" if acc is None else f"{acc:.3f}",
                     "" if c is None else f"{c:.3g}", "yes" if _feasible(t) else "no", star, params)  # fmt: skip
            rows.append("<tr>" + "".join(f"<td>{escape(str(x))}</td>" for x in cells) + "</tr>")
        head = "".join(f"<th>{h}</th>" for h in ("trial", "state", "accuracy", cost, "feasible", "front", "params"))
        note = f"<p>importances: {escape(why_not)}</p>" if why_not else ""
        return f"{''.join(images)}{note}<table><tr>{head}</tr>{''.join(rows)}</table>"

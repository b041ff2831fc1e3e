r"""Scaling curves of runs: coverage and majority@k against samples and against FLOPs, with a power-law fit.

``archon report RUN_DIR...`` reads each run's ``summary.json`` (the curves of :mod:`archon.scaling`:
unbiased pass@k, majority@k) and its cost, and draws, for one or several runs on one figure, coverage
(solid) and majority@k (dashed) against the number of samples and against the FLOPs per problem (a
problem's mean sampling cost scaled to ``k`` samples), as a PNG and as a self-contained interactive
HTML page. Coverage is fitted by the exponentiated power law of "Large Language Monkeys" (Brown et
al., 2024),

.. math:: c(k) \approx \exp(a \, k^{b}),\qquad a < 0,\ b < 0,

by least squares on :math:`\log c` (:func:`fit_coverage`); the fit is drawn dotted and its
parameters written to ``scaling.json``.

Example:
    >>> import math
    >>> ks = [1, 2, 4, 8, 16, 32]
    >>> fit = fit_coverage(ks, [math.exp(-1.2 * k**-0.4) for k in ks])
    >>> round(fit["a"], 3), round(fit["b"], 3), fit["r2"] > 0.999
    (-1.2, -0.4, True)
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archon.core.errors import ArchonError
from archon.tune.report import _figure, _require, _save

__all__ = ["RunCurves", "RunNotFoundError", "fit_coverage", "load_run", "write_scaling_report"]


class RunNotFoundError(ArchonError, ValueError):
    """A directory is not a finished run with scaling curves."""


@dataclass(frozen=True)
class RunCurves:
    """One run's curves: ``k``, pass@k, majority@k (``None`` for code), FLOPs per problem at each ``k``."""

    name: str
    k: list[int]
    coverage: list[float]
    majority: list[float] | None
    flops: list[float]
    problems: int


def load_run(run_dir: Path, name: str | None = None) -> RunCurves:
    """The curves of a run directory written by ``archon run --out`` (from its ``summary.json``).

    Raises:
        RunNotFoundError: no ``summary.json``, or a run without curves (fewer than two samples per problem).
    """
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise RunNotFoundError(f"{path}: no such file; `archon run SPEC --out {run_dir}` writes it")
    summary = json.loads(path.read_text())
    curve = summary.get("scaling")
    if not curve:
        raise RunNotFoundError(f"{path}: no scaling curves (the run needs graded problems with 2 samples or more)")
    n = max(curve["k"])
    per_problem = float(summary.get("per_problem", {}).get("flops") or 0.0)
    return RunCurves(
        name=name or Path(run_dir).name,
        k=list(curve["k"]),
        coverage=list(curve["pass@k"]),
        majority=None if curve.get("majority@k") is None else list(curve["majority@k"]),
        flops=[per_problem * k / n for k in curve["k"]],
        problems=int(max(curve["problems"])),
    )


def fit_coverage(ks: Sequence[int], coverage: Sequence[float]) -> dict[str, float] | None:
    """Fit ``c(k) = exp(a * k**b)`` to coverage by least squares on ``log c``.

    Points with coverage 0 (no information on the log scale) are left out; ``None`` when fewer than
    three points remain. Returns ``a``, ``b`` and ``r2`` (the fit's R² on ``log c``).
    """
    from scipy.optimize import curve_fit

    pts = [(float(k), math.log(c)) for k, c in zip(ks, coverage, strict=True) if c > 0]
    if len(pts) < 3:
        return None
    x = [p[0] for p in pts]
    y = [p[1] for p in pts]
    if all(v == 0 for v in y):  # solved at every k: c = 1
        return {"a": 0.0, "b": 0.0, "r2": 1.0}

    def model(k: Any, a: float, b: float) -> Any:
        return a * k**b

    with warnings.catch_warnings():  # an exact fit has no covariance estimate: not a problem here
        warnings.simplefilter("ignore")
        (a, b), _ = curve_fit(model, x, y, p0=(min(y[0], -1e-6), -0.5), maxfev=20000)
    a, b = float(a), float(b)
    fitted = [a * k**b for k in x]
    mean = sum(y) / len(y)
    total = sum((v - mean) ** 2 for v in y)
    resid = sum((v - f) ** 2 for v, f in zip(y, fitted, strict=True))
    return {"a": a, "b": b, "r2": float(1.0 - resid / total) if total > 0 else 1.0}


def write_scaling_report(runs: Sequence[RunCurves], out_dir: Path) -> dict[str, Any]:
    """Write ``scaling.png``, ``scaling.html`` and ``scaling.json`` (curves and fits) into ``out_dir``."""
    for module in ("matplotlib.figure", "plotly.graph_objects"):  # fail before writing anything
        _require(module)
    out_dir.mkdir(parents=True, exist_ok=True)
    fits = {r.name: fit_coverage(r.k, r.coverage) for r in runs}
    files = {"png": out_dir / "scaling.png", "html": out_dir / "scaling.html", "json": out_dir / "scaling.json"}
    _save(_png(runs, fits), files["png"])
    _html(runs, fits).write_html(files["html"], include_plotlyjs=True, full_html=True)
    payload = {
        "runs": [
            {"name": r.name, "k": r.k, "pass@k": r.coverage, "majority@k": r.majority, "flops": r.flops,
             "problems": r.problems, "fit": fits[r.name]}
            for r in runs
        ],
        "fit_form": "coverage(k) = exp(a * k**b)",
    }  # fmt: skip
    files["json"].write_text(json.dumps(payload, indent=2) + "\n")
    return {"files": {k: str(v) for k, v in files.items()}, "fits": fits}


def _dense(r: RunCurves) -> list[float]:
    top = max(r.k)
    steps = 60
    return [math.exp(math.log(top) * i / steps) for i in range(steps + 1)]


def _png(runs: Sequence[RunCurves], fits: dict[str, dict[str, float] | None]) -> Any:
    figure = _figure(11.0, 4.5)
    by_samples, by_flops = figure.subplots(1, 2)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for r, color in zip(runs, colors, strict=True):
        fit = fits[r.name]
        for ax, xs in ((by_samples, r.k), (by_flops, r.flops)):
            ax.plot(xs, r.coverage, "-o", color=color, markersize=3, label=f"{r.name} coverage")
            if r.majority is not None:
                ax.plot(xs, r.majority, "--s", color=color, markersize=3, label=f"{r.name} majority@k")
        if fit is not None:
            dense = _dense(r)
            label = f"{r.name} fit exp({fit['a']:.2f}·k^{fit['b']:.2f})"
            by_samples.plot(dense, [math.exp(fit["a"] * k ** fit["b"]) for k in dense], ":", color=color, label=label)
    for ax, xlabel in ((by_samples, "samples per problem (k)"), (by_flops, "FLOPs per problem")):
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of problems")
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
    by_samples.legend(fontsize=7, loc="lower right")
    by_samples.set_title("coverage (pass@k) and majority@k vs samples")
    by_flops.set_title("vs FLOPs")
    return figure


def _html(runs: Sequence[RunCurves], fits: dict[str, dict[str, float] | None]) -> Any:
    go = _require("plotly.graph_objects")
    subplots = _require("plotly.subplots")
    figure = subplots.make_subplots(rows=1, cols=2, subplot_titles=("vs samples per problem", "vs FLOPs per problem"))
    for r in runs:
        for col, xs in ((1, r.k), (2, r.flops)):
            hover = [f"k={k}" for k in r.k]
            figure.add_trace(
                go.Scatter(
                    x=xs,
                    y=r.coverage,
                    mode="lines+markers",
                    name=f"{r.name} coverage",
                    text=hover,
                    legendgroup=r.name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
            if r.majority is not None:
                figure.add_trace(go.Scatter(x=xs, y=r.majority, mode="lines+markers", name=f"{r.name} majority@k",
                                            line={"dash": "dash"}, text=hover, legendgroup=r.name,
                                            showlegend=col == 1), row=1, col=col)  # fmt: skip
        fit = fits[r.name]
        if fit is not None:
            dense = _dense(r)
            figure.add_trace(go.Scatter(x=dense, y=[math.exp(fit["a"] * k ** fit["b"]) for k in dense], mode="lines",
                                        name=f"{r.name} fit a={fit['a']:.3f} b={fit['b']:.3f}",
                                        line={"dash": "dot"}, legendgroup=r.name), row=1, col=1)  # fmt: skip
    figure.update_xaxes(type="log")
    figure.update_yaxes(range=[0, 1.02], title_text="fraction of problems")
    figure.update_layout(title="coverage and majority@k", template="plotly_white")
    return figure

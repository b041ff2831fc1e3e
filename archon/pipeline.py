"""The Python API: the same pipelines as the spec files, built in a few lines.

Example:
    >>> from archon.pipeline import Pipeline
    >>> pipe = (Pipeline()
    ...         .engine("policy", model="tiny-l")
    ...         .node("vote", "self_consistency", engine="policy", n=4, max_tokens=64))
    >>> print(pipe.to_yaml().splitlines()[0])
    engines:
    >>> Pipeline.from_yaml(pipe.to_yaml()).spec == pipe.spec
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from archon.core import Problem
from archon.core.sync import run_sync
from archon.spec.load import SpecError, parse_spec, read_spec_data
from archon.spec.models import Spec


class Pipeline:
    """A pipeline spec with a builder, a runner and YAML round trips."""

    def __init__(self, spec: Spec | dict[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = (
            spec.model_dump(exclude_none=True, exclude_defaults=True) if isinstance(spec, Spec) else dict(spec or {})
        )
        self._data.setdefault("pipeline", [])

    # ------------------------------------------------------------------ building

    def engine(self, name: str, **config: Any) -> Pipeline:
        """Declare an engine (``model=``, ``kind=``, ``device=`` ...)."""
        self._data.setdefault("engines", {})[name] = config
        return self

    def verifier(self, name: str, kind: str, **options: Any) -> Pipeline:
        """Declare a verifier (``reward_model`` with ``model=``, ``arith_steps``, ``yes_no_judge`` with ``engine=``)."""
        entry: dict[str, Any] = {"kind": kind, **{k: options.pop(k) for k in ("model", "engine") if k in options}}
        if options:
            entry["options"] = options
        self._data.setdefault("verifiers", {})[name] = entry
        return self

    def node(self, id: str, op: str, *, inputs: Sequence[str] | None = None, **params: Any) -> Pipeline:
        """Add a node; without ``inputs`` it reads the previous node (the first one reads the problem)."""
        nodes = self._data["pipeline"]
        if inputs is None:
            inputs = [nodes[-1]["id"]] if nodes else []
        nodes.append({"id": id, "op": op, "inputs": list(inputs), "params": params})
        return self

    def budget(
        self,
        *,
        per_problem: dict[str, float] | None = None,
        per_run: dict[str, float] | None = None,
        hardware: str | None = None,
    ) -> Pipeline:
        """Set the budget (limits per problem and per run, and a hardware profile for latency)."""
        self._data["budget"] = {
            "per_problem": per_problem or {},
            "per_run": per_run or {},
            **({"hardware": hardware} if hardware else {}),
        }
        return self

    @property
    def spec(self) -> Spec:
        """The validated spec (raises :class:`~archon.spec.SpecError` naming the spec path)."""
        return parse_spec(self._data, source="Pipeline")

    # ------------------------------------------------------------------ YAML

    def to_yaml(self) -> str:
        """The spec as YAML (``from_yaml`` reads it back to an equal spec)."""
        return yaml.safe_dump(self.spec.model_dump(exclude_none=True, exclude_defaults=True), sort_keys=False)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> Pipeline:
        """A pipeline from YAML text or a spec file (``extends:`` resolved)."""
        path = Path(str(text_or_path))
        if "\n" not in str(text_or_path) and path.suffix in (".yaml", ".yml", ".json") and path.is_file():
            return cls(read_spec_data(path))
        data = yaml.safe_load(str(text_or_path))
        if not isinstance(data, dict):
            raise SpecError("Pipeline.from_yaml: not a spec (a mapping with a pipeline)")
        return cls(data)

    # ------------------------------------------------------------------ running

    def __call__(self, question: str | Problem) -> dict[str, Any]:
        """Run on one question; returns its record (answer, candidates, trace, cost)."""
        problem = question if isinstance(question, Problem) else Problem(id="q", question=question)
        return self.evaluate([problem])["records"][0]

    def evaluate(
        self,
        problems: Sequence[Problem],
        *,
        out: str | Path | None = None,
        resume: bool = False,
        force: bool = False,
        seed: int = 0,
    ) -> Results:
        """Run on problems: per-problem records and the run summary.

        With ``out`` the records are written there as they finish; an ``out`` holding results needs
        ``resume`` (continue) or ``force`` (start over).
        """
        from archon.runtime import Runner

        runner = Runner(self.spec, seed=seed)
        records: list[dict[str, Any]] = []

        async def go() -> dict[str, Any]:
            try:
                return await runner.run(problems, out=out, resume=resume, force=force, progress=records.append)
            finally:
                await runner.aclose()

        summary = run_sync(go())
        order = {p.id: i for i, p in enumerate(problems)}
        records.sort(key=lambda r: order.get(r["id"], len(order)))
        results = Results(records, summary)
        results.pipeline = runner.pipeline_graph()
        return results


class Results(dict):
    """A run's ``records`` (one per problem) and ``summary``; ``to_pandas()`` when pandas is installed.

    In a notebook a ``Results`` shows itself as tables (the summary, then the problems);
    :meth:`coverage_figure` draws its scaling curves and :meth:`view` the trace viewer's page.
    """

    def __init__(self, records: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        super().__init__(records=records, summary=summary)
        self.pipeline: dict[str, Any] | None = None
        """The DAG that ran (what the trace viewer draws)."""

    @property
    def records(self) -> list[dict[str, Any]]:
        """One record per problem: id, answer, reference, correct, covered, cost, candidates, trace."""
        return self["records"]

    @property
    def summary(self) -> dict[str, Any]:
        """Accuracy, coverage, errors and cost totals."""
        return self["summary"]

    def to_pandas(self) -> Any:
        """The records as a pandas DataFrame (one row per problem; cost columns flattened)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_pandas() needs pandas: pip install pandas") from exc
        rows = []
        for r in self.records:
            row = {k: v for k, v in r.items() if k not in ("candidates", "trace", "cost")}
            row.update({f"cost_{k}": v for k, v in (r.get("cost") or {}).items()})
            row["candidates"] = len(r["candidates"])
            rows.append(row)
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        """The summary and the first 50 problems as HTML tables (a notebook's display)."""
        from html import escape

        s = self.summary
        per = s.get("per_problem", {})
        head = {"problems": s.get("problems"), "accuracy": s.get("accuracy"), "coverage": s.get("coverage"),
                "errors": s.get("errors"), "FLOPs / problem": per.get("flops"),
                "tokens / problem": per.get("tokens"), "wall seconds": s.get("seconds")}  # fmt: skip
        cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_fmt(v))}</td></tr>" for k, v in head.items())
        rows = []
        for r in self.records[:50]:
            ok = "" if r["correct"] is None else ("✓" if r["correct"] else "✗")
            values = (r["id"], r["answer"], r["reference"], ok, (r.get("cost") or {}).get("flops"),
                      len(r["candidates"]), r["error"] or "")  # fmt: skip
            rows.append("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in values) + "</tr>")
        more = len(self.records) - 50
        tail = f"<p>… and {more} more problems (<code>to_pandas()</code> has them all)</p>" if more > 0 else ""
        header = "".join(f"<th>{h}</th>" for h in ("id", "answer", "reference", "correct", "FLOPs", "candidates",
                                                     "error"))  # fmt: skip
        return f"<table>{cells}</table><table><tr>{header}</tr>{''.join(rows)}</table>{tail}"

    def coverage_figure(self) -> Any:
        """Coverage (pass@k) and majority@k against samples and FLOPs, with the power-law fit (a matplotlib Figure).

        Needs several samples per problem in the final candidates (the summary's ``scaling``).
        """
        from archon.scaling_report import RunCurves, _png, fit_coverage

        curve = self.summary.get("scaling")
        if not curve:
            raise ValueError("no scaling curves: the run's final candidates need 2 samples or more per problem")
        n = max(curve["k"])
        flops = float(self.summary.get("per_problem", {}).get("flops") or 0.0)
        run = RunCurves("run", curve["k"], curve["pass@k"], curve["majority@k"], [flops * k / n for k in curve["k"]],
                        max(curve["problems"]))  # fmt: skip
        return _png([run], {"run": fit_coverage(run.k, run.coverage)})

    def view(self, problem: str | None = None, height: int = 700) -> Any:
        """The trace viewer's page of these results, for a notebook (an iframe holding the self-contained page)."""
        from archon.view import render

        records = [r for r in self.records if problem is None or r["id"] == problem]
        if not records:
            raise ValueError(f"no problem {problem!r} in these results")
        return _Page(render(self.summary, records, self.pipeline, title="results"), height)


class _Page:
    """A self-contained HTML page shown in an iframe by a notebook."""

    def __init__(self, page: str, height: int) -> None:
        self.page, self.height = page, height

    def _repr_html_(self) -> str:
        from html import escape

        return (
            f'<iframe srcdoc="{escape(self.page)}" style="width:100%;height:{self.height}px;border:1px solid #ccc">'
            "</iframe>"
        )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e4 or (v and abs(v) < 1e-3) else f"{v:.3f}".rstrip("0").rstrip(".")
    return "" if v is None else str(v)

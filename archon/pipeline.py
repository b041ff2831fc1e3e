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

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from archon.core import Problem
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

        summary = asyncio.run(go())
        order = {p.id: i for i, p in enumerate(problems)}
        records.sort(key=lambda r: order.get(r["id"], len(order)))
        return Results(records, summary)


class Results(dict):
    """A run's ``records`` (one per problem) and ``summary``; ``to_pandas()`` when pandas is installed."""

    def __init__(self, records: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        super().__init__(records=records, summary=summary)

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

"""The async executor: every problem flows through the pipeline DAG as a concurrent task.

For each problem, each node runs as soon as its inputs are done (independent branches concurrently);
a node with several inputs gets the union of their candidates. Operators are called per problem and
the engines batch underneath. Every model call is charged to the run's ledger under (node, problem);
seeds per (problem, node) make runs reproducible. Results are written incrementally — one JSON line
per problem in ``results.jsonl``, then ``summary.json`` — and ``resume=True`` skips the problems
already written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from archon import plugins
from archon.core import (
    ArchonError,
    Chargeable,
    ChargedEngine,
    Problem,
    ProcessVerifier,
    State,
    Verifier,
    VerifierDecl,
)
from archon.core.prefixes import ComputedPrefixes
from archon.core.registry import OPERATORS, RETRIEVER_KINDS, VERIFIER_KINDS
from archon.core.retrieval import Retriever
from archon.rundir import append_record, open_run, spec_hash
from archon.scaling import curves
from archon.spec.graph import compile_pipeline, output_node
from archon.spec.load import SpecError
from archon.spec.models import RetrieverSpec, Spec, VerifierSpec
from budgets import Budget, BudgetExhausted, Cost, CostModel, Ledger, Scope, profile
from samplers.engines import EnginePool
from verifiers.answers import answers_equal


@dataclass
class NodeContext:
    """The :class:`~archon.core.Context` of one (node, problem)."""

    run: Runner
    node: str
    problem: str
    seed: int

    def engine(self, name: str) -> ChargedEngine:
        """The engine declared as ``name``, charged to this node and problem."""
        return self.run.charged_engine(name, Scope(self.node, self.problem))

    def retriever(self, name: str) -> Retriever:
        """The retriever declared as ``name``, its searches charged to this node and problem."""
        return self.run.retriever(name, Scope(self.node, self.problem))

    def verifier(self, name: str) -> Verifier:
        """The verifier declared as ``name``, its model calls charged to this node and problem."""
        return self.run.verifier(name, Scope(self.node, self.problem))

    def process_verifier(self, name: str) -> ProcessVerifier:
        """The verifier declared as ``name``, which must score steps."""
        v = self.verifier(name)
        if v.kind != "process":
            raise SpecError(f"node {self.node!r}: verifier {name!r} is an {v.kind} verifier; this op needs step scores")
        return v  # type: ignore[return-value]


@dataclass
class Resources:
    """The engines, model-based verifiers and retrievers of runs, built once and shared (by a study's trials).

    ``wrap`` (say, the tuner's generation cache) wraps each engine once, by name, before it is charged.
    """

    pool: EnginePool
    verifiers: dict[str, Any] = field(default_factory=dict)
    retrievers: dict[str, Any] = field(default_factory=dict)
    wrap: Callable[[str, Any], Any] | None = None
    credit: Literal["reported", "computed"] = "reported"
    """How engine calls are credited for reused prefixes (:class:`~archon.core.ChargedEngine`'s ``credit``)."""
    _wrapped: dict[str, Any] = field(default_factory=dict)

    def engine(self, name: str) -> Any:
        """The engine declared as ``name`` (wrapped when a ``wrap`` is set)."""
        if self.wrap is None:
            return self.pool.get(name)
        if name not in self._wrapped:
            self._wrapped[name] = self.wrap(name, self.pool.get(name))
        return self._wrapped[name]

    async def aclose(self) -> None:
        """Close the engines, verifiers and retrievers built."""
        await self.pool.aclose()
        for v in [*self.verifiers.values(), *self.retrievers.values()]:
            closer = getattr(v, "close", None)
            if closer is not None:
                closer()


@dataclass
class Runner:
    """Runs a validated spec on problems (with its own engines, or shared ``resources``)."""

    spec: Spec
    seed: int = 0
    concurrency: int = 64
    resources: Resources | None = None
    pool: EnginePool = field(init=False)
    ledger: Ledger = field(init=False)
    graph: nx.DiGraph = field(init=False)

    def __post_init__(self) -> None:
        tuned = self.spec.tunables()
        if tuned:
            raise SpecError(f"{next(iter(tuned))}: a tuned value; run `archon tune`, or fix it to a value")
        plugins.load()
        compile_pipeline(self.spec)  # the spec as written is valid ...
        if any(node.enabled is False for node in self.spec.pipeline):  # ... and runs without its disabled nodes
            from archon.tune.space import concretize

            self.spec = concretize(self.spec, {})
        self.graph = compile_pipeline(self.spec)
        self.params = {n.id: OPERATORS.get(str(n.op)).params(**n.params_for(str(n.op))) for n in self.spec.pipeline}
        self._owns = self.resources is None
        if self.resources is None:
            self.resources = Resources(EnginePool(dict(self.spec.engines)), wrap=per_sample_seeds)
        self.pool = self.resources.pool
        budget = self.spec.budget
        self.ledger = Ledger(Budget.of(budget.per_problem, budget.per_run) if budget else Budget())
        self.hardware = profile(budget.hardware) if budget and budget.hardware else None
        self._verifiers: dict[str, Any] = self.resources.verifiers
        self.output = output_node(self.graph)
        self.order = list(nx.topological_sort(self.graph))
        self._prefixes: dict[tuple[str, str], ComputedPrefixes] = {}

    # ------------------------------------------------------------------ resources

    def charged_engine(self, name: str, scope: Scope) -> ChargedEngine:
        """The named engine, wrapped to charge ``scope``."""
        assert self.resources is not None
        engine = self.resources.engine(name)
        cost = CostModel(engine.facts)
        prices = self.pool.config(name).prices()
        prefixes = None
        if scope.problem:  # reuse is credited within a problem only (archon.core.prefixes)
            prefixes = self._prefixes.setdefault((scope.problem, name), ComputedPrefixes())
        return ChargedEngine(
            engine, self.ledger, scope, cost=cost, hardware=self.hardware, prices=prices, prefixes=prefixes,
            credit=self.resources.credit,
        )  # fmt: skip

    def verifier(self, name: str, scope: Scope) -> Verifier:
        """The named verifier, built by its kind's builder; its model calls are charged to ``scope``.

        One that reads a declared engine is built for each scope, on that engine charged to it; any
        other is built once and, when :class:`~archon.core.Chargeable`, charged through ``charged``.
        """
        if name not in self.spec.verifiers:
            raise SpecError(f"no verifier {name!r} declared")
        spec = self.spec.verifiers[name]
        if spec.engine is not None:
            return _build_verifier(spec, name, self.charged_engine(spec.engine, scope))
        if name not in self._verifiers:
            self._verifiers[name] = _build_verifier(spec, name, None)
        v = self._verifiers[name]
        return v.charged(self.ledger, scope, hardware=self.hardware) if isinstance(v, Chargeable) else v

    def retriever(self, name: str, scope: Scope) -> Retriever:
        """The named retriever, built once (the retrievers it combines first); its searches charged to ``scope``."""
        r = self.built_retriever(name)
        return r.charged(self.ledger, scope, hardware=self.hardware) if isinstance(r, Chargeable) else r

    def built_retriever(self, name: str) -> Any:
        """The named retriever as built (uncharged), building it on first use."""
        assert self.resources is not None
        if name not in self.spec.retrievers:
            raise SpecError(f"no retriever {name!r} declared")
        built = self.resources.retrievers
        if name not in built:
            spec = self.spec.retrievers[name]
            members = {m: self.built_retriever(m) for m in spec.of}
            with _declared("retrievers", name):
                built[name] = _build_retriever(spec, name, members)
        return built[name]

    def index_report(self) -> dict[str, Any]:
        """Each built retriever's index: documents, whether it came from the cache, its build's seconds and FLOPs."""
        assert self.resources is not None
        return {n: dict(getattr(r, "index_info", {})) for n, r in sorted(self.resources.retrievers.items())}

    def prepare(self) -> None:
        """Build every declared engine and engine-less verifier now (a run builds them on first use).

        A resource that cannot be built (a missing model, an unknown dtype or device, an option its
        class does not take) fails here, before the first problem runs, in one line naming it
        (``engines.policy: ...``).
        """
        for name in self.spec.engines:
            with _declared("engines", name):
                self.pool.get(name)
        for name, spec in self.spec.verifiers.items():
            if spec.engine is None:
                with _declared("verifiers", name):
                    self.verifier(name, Scope())
        for name in self.spec.retrievers:
            self.built_retriever(name)

    def pipeline_graph(self) -> dict[str, Any]:
        """The DAG that runs, for a run directory's ``pipeline.json`` (what ``archon view`` draws)."""
        nodes = []
        for n in self.order:
            node = self.graph.nodes[n]["node"]
            params = {k: v for k, v in node.params_for(str(node.op)).items()}
            nodes.append({"id": n, "op": str(node.op), "inputs": list(self.graph.predecessors(n)),
                          "params": json.loads(json.dumps(params, default=str))})  # fmt: skip
        return {"nodes": nodes, "output": self.output}

    # ------------------------------------------------------------------ running

    @property
    def correct(self) -> dict[str, bool]:
        """Whether each graded problem of the last run was answered right, by problem id."""
        return {r["id"]: bool(r["correct"]) for r in getattr(self, "records", []) if r["correct"] is not None}

    def node_seed(self, problem: Problem, node: str) -> int:
        """A seed per (run seed, problem, node); a problem's ``metadata["seed_key"]`` stands for its id when set.

        (A server gives each request its own id but seeds it by its content, so that the same request gets
        the same answer.)
        """
        key = problem.metadata.get("seed_key", problem.id)
        digest = hashlib.sha256(f"{self.seed}:{key}:{node}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    async def run_problem(self, problem: Problem) -> dict[str, Any]:
        """Run the pipeline on one problem; returns its result record."""
        start = time.perf_counter()
        done: dict[str, asyncio.Future[State]] = {n: asyncio.get_running_loop().create_future() for n in self.order}

        async def run_node(n: str) -> None:
            try:
                inputs = [await done[i] for i in self.graph.predecessors(n)]
                state = State.merge(inputs) if inputs else State(problem)
                node = self.graph.nodes[n]["node"]
                op = OPERATORS.get(str(node.op))
                ctx = NodeContext(self, n, problem.id, self.node_seed(problem, n))
                result = await op.fn(ctx, state, self.params[n])
                if not done[n].done():  # cancelled meanwhile (the run is being stopped)
                    done[n].set_result(result)
            except BaseException as exc:
                if not done[n].done():
                    done[n].set_exception(exc)
                raise

        tasks = [asyncio.create_task(run_node(n)) for n in self.order]
        error = None
        try:
            final = await done[self.output]
        except ArchonError as exc:
            final, error = State(problem), str(exc)
        except BudgetExhausted as exc:  # an operator that does not handle refusals: this problem only
            final, error = State(problem), f"the budget refused a call that this pipeline needed: {exc}"
        finally:  # on every way out, cancellation included: no node is left running
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for key in [k for k in self._prefixes if k[0] == problem.id]:
                del self._prefixes[key]
        passed = await _run_tests(problem, final) if problem.answer is None and problem.tests is not None else None
        return self._record(problem, final, error, time.perf_counter() - start, passed)

    def _record(
        self, problem: Problem, final: State, error: str | None, seconds: float, passed: list[bool] | None = None
    ) -> dict[str, Any]:
        top = final.candidates[0] if final.candidates else None
        answer = top.answer if top else None
        correct = None if problem.answer is None else bool(answers_equal(answer, problem.answer))
        covered = None
        if problem.answer is not None:
            covered = any(answers_equal(c.answer, problem.answer) for c in final.candidates)
        elif passed is not None:  # a code problem: graded by its tests
            correct, covered = bool(passed and passed[0]), any(passed)
        self.ledger.finish(problem.id)
        cost = self.ledger.problem_total(problem.id)
        refused = self.ledger.problem_refusals(problem.id)
        return {
            "id": problem.id,
            "answer": answer,
            "reference": problem.answer,
            "correct": correct,
            "covered": covered,
            "error": error,
            "seconds": seconds,
            "cost": cost.to_dict(),
            "cost_by_node": {k: c.to_dict() for k, c in sorted(self.ledger.problem_by_node(problem.id).items())},
            "refusals": len(refused),
            "first_refusal": refused[0] if refused else None,
            "candidates": [
                {"text": c.text, "answer": c.answer, "scores": dict(c.scores), "model": c.model}
                | ({} if passed is None else {"passed": passed[i]})
                for i, c in enumerate(final.candidates)
            ],
            "trace": list(final.trace),
        }

    async def run(
        self,
        problems: Sequence[Problem],
        *,
        out: str | Path | None = None,
        resume: bool = False,
        force: bool = False,
        progress: Callable[[dict[str, Any]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """Run every problem (bounded concurrency), write results incrementally, return the summary.

        With ``out``, records go to ``out/results.jsonl`` as each problem finishes (:mod:`archon.rundir`):
        a directory holding results is refused unless ``resume`` (continue it: the problems already
        written are skipped, and it must be the same spec and seed) or ``force`` (start over).
        ``progress`` sees each record as it is written; once ``should_stop`` returns ``True`` the problems
        not yet started are skipped (the summary covers those that ran).
        """
        out_dir = Path(out) if out else None
        records: list[dict[str, Any]] = []
        self.records = records
        if out_dir is not None:
            identity = {"spec": spec_hash(self.spec), "seed": self.seed}
            records.extend(open_run(out_dir, identity, resume=resume, force=force))
            (out_dir / "pipeline.json").write_text(json.dumps(self.pipeline_graph(), indent=2) + "\n")
        skip = {r["id"] for r in records}
        for r in records:  # an earlier session's spend counts against a per-run budget
            self.ledger.carry(r["id"], Cost.from_dict(r["cost"]), _node_costs(r))
        self.ledger.plan(len(skip) + sum(p.id not in skip for p in problems))
        sem = asyncio.Semaphore(self.concurrency)
        start = time.perf_counter()

        async def one(p: Problem) -> None:
            async with sem:
                if should_stop is not None and should_stop():
                    return
                rec = await self.run_problem(p)
            records.append(rec)
            if out_dir is not None:
                append_record(out_dir, rec)
            if progress is not None:
                progress(rec)

        await asyncio.gather(*(one(p) for p in problems if p.id not in skip))
        order = {p.id: i for i, p in enumerate(problems)}
        records.sort(key=lambda r: order.get(r["id"], len(order)))
        summary = summarize(records, self.ledger, time.perf_counter() - start)
        if self.spec.retrievers:  # built once per run (or study): reported, not charged to problems
            summary["retrievers"] = self.index_report()
        if out_dir is not None:
            (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    async def aclose(self) -> None:
        """Close the engines and verifiers the run built (shared resources are their owner's to close)."""
        if self._owns and self.resources is not None:
            await self.resources.aclose()


@contextmanager
def _declared(section: str, name: str) -> Iterator[None]:
    """Turn any failure to build a declared resource into one :class:`SpecError` line naming it."""
    try:
        yield
    except SpecError as exc:
        raise SpecError(f"{section}.{name}: {exc}") from None
    except Exception as exc:  # whatever the backend raises: one line, with its kind
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise SpecError(f"{section}.{name}: {message[:300]}") from exc


def per_sample_seeds(name: str, engine: Any) -> Any:
    """``engine`` drawing the samples of a seeded request by index (:class:`~samplers.indexed.IndexSeededEngine`).

    Sample ``i`` is then the same whatever ``n`` the request asks for, in a plain run as in a tuning
    study (whose generation cache relies on it): the ``best.yaml`` a study writes reproduces its
    trial's answers under ``archon run``. For the transformers engine, whose rows draw from streams
    keyed by (seed, index), requests pass through as they are.
    """
    from samplers.indexed import IndexSeededEngine

    return IndexSeededEngine(engine, identity=name, usage="actual")


def summarize(records: Sequence[dict[str, Any]], ledger: Ledger, seconds: float) -> dict[str, Any]:
    """Accuracy, coverage, errors (with the first one), budget refusals, costs and scaling curves of a run.

    Everything but the measured wall times (``seconds``) depends on the records alone, in their order:
    a run resumed after an interruption has the summary of the same run left alone. ``cost`` sums
    the records' costs (in total and by node), ``per_problem`` is its mean; ``overruns`` (settlements
    above their reservation: a bug) is the ledger's count in this process.
    """
    graded = [r for r in records if r["correct"] is not None]
    n = len(records)
    failed = [r for r in records if r["error"] is not None]
    refused = [r for r in records if r.get("refusals")]
    total = sum((Cost.from_dict(r["cost"]) for r in records), Cost())
    by_node: dict[str, Cost] = {}
    for r in records:
        for node, c in _node_costs(r).items():
            by_node[node] = by_node.get(node, Cost()) + c
    return {
        "problems": n,
        "accuracy": sum(r["correct"] for r in graded) / len(graded) if graded else None,
        "coverage": sum(bool(r["covered"]) for r in graded) / len(graded) if graded else None,
        "errors": len(failed),
        "first_error": {"id": failed[0]["id"], "error": failed[0]["error"]} if failed else None,
        "budget": {
            "problems_refused": len(refused),
            "refusals": sum(r.get("refusals", 0) for r in records),
            "first_refusal": {"id": refused[0]["id"], "refusal": refused[0]["first_refusal"]} if refused else None,
            "problems_without_answer": sum(bool(r.get("refusals")) and not r["candidates"] for r in records),
        },
        "seconds": seconds,
        "cost": {
            "total": total.to_dict(),
            "by_node": {k: c.to_dict() for k, c in sorted(by_node.items())},
            "overruns": ledger.overruns,
        },
        "per_problem": {k: v / n for k, v in total.to_dict().items()} if n else {},
        "scaling": curves(records),
    }


def _node_costs(record: dict[str, Any]) -> dict[str, Cost]:
    """A record's cost by node (a record without that breakdown: all under ``""``)."""
    nodes = record.get("cost_by_node")
    if nodes is None:
        return {"": Cost.from_dict(record["cost"])}
    return {k: Cost.from_dict(c) for k, c in nodes.items()}


def _build_retriever(spec: RetrieverSpec, name: str, members: dict[str, Any]) -> Any:
    """Build a declared retriever with its kind's registered builder, over its corpus (loaded here)."""
    from archon import data
    from archon.retrieval import RetrieverDecl

    docs = data.corpus(spec.corpus) if spec.corpus else []
    return RETRIEVER_KINDS.get(spec.kind).build(RetrieverDecl(name, docs, dict(spec.options), members))


def _build_verifier(spec: VerifierSpec, name: str, engine: Any) -> Verifier:
    """Build a declared verifier with its kind's registered builder; it must declare its kind."""
    decl = VerifierDecl(name=name, model=spec.model, engine=engine, options=dict(spec.options))
    built = VERIFIER_KINDS.get(spec.kind).build(decl)
    if built.kind not in ("outcome", "process"):
        raise SpecError(f"verifiers.{name}: kind {spec.kind!r} built a verifier whose kind is {built.kind!r}")
    return built


async def _run_tests(problem: Problem, final: State) -> list[bool]:
    """Whether each final candidate's program passes the problem's tests (a code problem's grade)."""
    from verifiers.code import passes

    outcomes = [await asyncio.to_thread(passes, problem, c.text) for c in final.candidates]
    return [o.passed for o in outcomes]

"""Budgets and the ledger: every model call reserves its worst case first, then settles what it cost.

A :class:`Ledger` keeps the costs of a run, scoped run → node → problem → call. Before a call, its
worst-case :class:`Cost` is reserved against every limit of the :class:`Budget` (per problem: the
problem's settled costs plus its outstanding reservations; per run: the same over all problems). A
reservation that would break a limit raises :class:`~budgets.BudgetExhausted` and nothing is charged,
so the call never runs. After the call, :meth:`Reservation.settle` replaces the reservation by the
actual cost (never more than reserved for FLOPs, tokens, calls, latency and dollars: the reservation
is a true worst case), or :meth:`Reservation.release` drops it when the call failed. Limits on those
quantities are therefore never exceeded.

A per-run budget is shared fairly among the problems of a run once :meth:`Ledger.plan` says how many
there are: a problem may commit at most an equal share of what the problems already finished left
of each per-run limit — ``(limit - spent by finished problems) / problems not finished`` — so that
concurrent problems cannot starve the others, and what an easy problem leaves unspent goes to those
still to run. (Without a plan, a per-run limit is first come, first served.)

Wall time cannot be known before a call; a wall-time limit is checked at reservation (a call is
refused once the settled time has reached the limit), so the calls already in flight can end past it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from budgets.errors import BudgetError, BudgetExhausted


@dataclass(frozen=True, slots=True)
class Cost:
    """What one or more model calls cost.

    ``flops`` counts the FLOPs actually computed (prefill of uncached tokens, decode steps);
    ``latency`` is the idealized time on the run's hardware profile; ``seconds`` is measured wall time.
    """

    flops: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    calls: int = 0
    seconds: float = 0.0
    latency: float = 0.0
    dollars: float = 0.0

    @property
    def tokens(self) -> int:
        """Prompt plus generated tokens (cached prompt tokens included: they were sent)."""
        return self.prompt_tokens + self.generated_tokens

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Cost)))

    def __sub__(self, other: Cost) -> Cost:
        return Cost(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(Cost)))

    def to_dict(self) -> dict[str, float]:
        """The cost as JSON-ready numbers (with ``tokens``)."""
        return {**asdict(self), "tokens": self.tokens}

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> Cost:
        """The cost :meth:`to_dict` wrote (``tokens``, derived, is ignored)."""
        return cls(**{f.name: data.get(f.name, 0) for f in fields(cls)})


COSTS: dict[str, str] = {
    "flops": "FLOPs",
    "tokens": "tokens",
    "calls": "model calls",
    "seconds": "wall seconds",
    "latency": "idealized latency (s)",
    "dollars": "dollars",
}
"""The cost vocabulary, defined once: every quantity a run records per problem and a budget can limit
(ledger limits, a spec's ``budget`` and ``tune.budget``, ``archon tune --budget-*`` flags, a study's cost
objective), with the label reports print."""
LIMITS = tuple(COSTS)
"""The quantities a budget can limit (the keys of :data:`COSTS`)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds on a cost (``None``: unlimited)."""

    flops: float | None = None
    tokens: int | None = None
    calls: int | None = None
    seconds: float | None = None
    latency: float | None = None
    dollars: float | None = None

    def __post_init__(self) -> None:
        for name in LIMITS:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise BudgetError(f"budget limit {name}: must be a number >= 0, got {value!r}")

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return any(getattr(self, n) is not None for n in LIMITS)

    def broken_by(self, cost: Cost) -> str | None:
        """The first limit ``cost`` exceeds (``"flops 1.2e9 > 1e9"``), or ``None``."""
        for name in LIMITS:
            limit = getattr(self, name)
            value = getattr(cost, name)
            if limit is not None and value > limit * (1 + 1e-12):
                return f"{name} {value:.6g} > {limit:.6g}"
        return None


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits per problem and per run.

    Example:
        >>> b = Budget.of(per_problem={"flops": 1e9, "calls": 8}, per_run={"dollars": 2.5})
        >>> b.per_problem.calls, b.per_run.dollars
        (8, 2.5)
    """

    per_problem: Limits = Limits()
    per_run: Limits = Limits()

    @classmethod
    def of(cls, per_problem: Mapping[str, float] | None = None, per_run: Mapping[str, float] | None = None) -> Budget:
        """A budget from plain mappings (as a spec declares it); unknown keys are errors."""

        def limits(scope: str, data: Mapping[str, float] | None) -> Limits:
            unknown = sorted(set(data or {}) - set(LIMITS))
            if unknown:
                raise BudgetError(f"budget.{scope}: unknown limit {unknown[0]!r} (limits: {', '.join(LIMITS)})")
            return Limits(**dict(data or {}))

        return cls(limits("per_problem", per_problem), limits("per_run", per_run))


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a call is charged: a node of the pipeline and a problem (``""``: none)."""

    node: str = ""
    problem: str = ""


class Reservation:
    """A worst-case cost held against the budget until the call settles or is released."""

    def __init__(self, ledger: Ledger, scope: Scope, worst: Cost) -> None:
        self.ledger, self.scope, self.worst = ledger, scope, worst
        self.done = False

    def settle(self, actual: Cost) -> Cost:
        """Replace the reservation by the call's actual cost; returns what was charged."""
        return self.ledger._close(self, actual)

    def release(self) -> None:
        """Drop the reservation (the call failed or was cancelled); nothing is charged."""
        self.ledger._close(self, None)


class Ledger:
    """Costs of a run by node, problem and call, enforcing a :class:`Budget`.

    Thread-safe; reservations are atomic, so concurrent calls can never together exceed a limit.
    Scopes nest run → node → problem → call: :meth:`total` is the run, :meth:`by` groups by node or
    problem, :meth:`entries` gives (node, problem) pairs and :attr:`calls` each settled call.

    Example:
        >>> ledger = Ledger(Budget.of(per_problem={"tokens": 100}))
        >>> r = ledger.reserve(Scope("sample", "p1"), Cost(prompt_tokens=20, generated_tokens=64, calls=1))
        >>> ledger.reserve(Scope("sample", "p1"), Cost(prompt_tokens=20, generated_tokens=64, calls=1))
        Traceback (most recent call last):
        ...
        budgets.errors.BudgetExhausted: problem 'p1' would exceed its budget: tokens 168 > 100
        >>> r.settle(Cost(prompt_tokens=20, generated_tokens=30, calls=1)).tokens
        50
        >>> ledger.total().tokens, ledger.outstanding
        (50, 0)
    """

    def __init__(self, budget: Budget | None = None, *, keep_calls: bool = True) -> None:
        self.budget = budget or Budget()
        self.keep_calls = keep_calls
        self.calls: list[tuple[Scope, Cost]] = []
        """Every settled call, in settlement order (the finest scope), when ``keep_calls``."""
        self._lock = threading.Lock()
        self._settled: dict[Scope, Cost] = {}
        self._by_problem: dict[str, Cost] = {}
        self._run_total = Cost()
        self._reserved_by_problem: dict[str, Cost] = {}
        self._reserved = Cost()
        self._open: set[int] = set()
        self._by_problem_node: dict[str, dict[str, Cost]] = {}
        self._refused: dict[str, list[str]] = {}
        self._planned: int | None = None
        self._limits: dict[str, Limits] = {}
        self._finished: set[str] = set()
        self._finished_total = Cost()
        self.refusals = 0
        self.overruns = 0
        """Settlements that cost more than their reservation (a caller's worst case that was not)."""

    # ------------------------------------------------------------------ reserve / settle

    def reserve(self, scope: Scope, worst: Cost) -> Reservation:
        """Hold ``worst`` against the budget, or raise :class:`BudgetExhausted` holding nothing."""
        with self._lock:
            problem_now = self._problem_total(scope.problem) + self._reserved_by_problem.get(scope.problem, Cost())
            broken = self._check(self.budget.per_problem, problem_now, worst) if scope.problem else None
            if broken:
                self._refuse(scope, f"problem {scope.problem!r} would exceed its budget: {broken}")
            own = self._limits.get(scope.problem)
            broken = self._check(own, problem_now, worst) if own is not None else None
            if broken:
                self._refuse(scope, f"problem {scope.problem!r} would exceed its own budget: {broken}")
            share = self._share(scope.problem)
            broken = self._check(share, problem_now, worst) if share is not None else None
            if broken:
                left = self._planned - len(self._finished)  # type: ignore[operator]
                self._refuse(
                    scope,
                    f"problem {scope.problem!r} would exceed its share of the run's budget: {broken} "
                    f"(what is left, shared by {left} problems not finished)",
                )
            broken = self._check(self.budget.per_run, self._total() + self._reserved, worst)
            if broken:
                self._refuse(scope, f"the run would exceed its budget: {broken}")
            r = Reservation(self, scope, worst)
            self._open.add(id(r))
            self._reserved = self._reserved + worst
            self._reserved_by_problem[scope.problem] = self._reserved_by_problem.get(scope.problem, Cost()) + worst
            return r

    def _refuse(self, scope: Scope, message: str) -> None:
        self.refusals += 1
        self._refused.setdefault(scope.problem, []).append(message)
        raise BudgetExhausted(message)

    def _share(self, problem: str) -> Limits | None:
        """A problem's fair share of the per-run limits (``None``: no plan, no per-run limit, not a problem)."""
        limits = self.budget.per_run
        if self._planned is None or not problem or not limits.active or problem in self._finished:
            return None
        left = max(1, self._planned - len(self._finished))
        share = {}
        for name in LIMITS:
            limit = getattr(limits, name)
            if limit is not None and name != "seconds":  # wall time is not reserved: no share of it
                share[name] = max(0.0, limit - getattr(self._finished_total, name)) / left
        return Limits(**share)

    # ------------------------------------------------------------------ the run's problems

    def plan(self, problems: int) -> None:
        """Declare how many problems the run has (those :meth:`carry` brought in included): turns on fair shares."""
        if problems < 0:
            raise BudgetError(f"Ledger.plan: problems must be >= 0, got {problems}")
        with self._lock:
            self._planned = problems

    def finish(self, problem: str) -> None:
        """Mark ``problem`` finished: what it left of its share goes to the problems still to run."""
        with self._lock:
            if problem not in self._finished:
                self._finished.add(problem)
                self._finished_total = self._finished_total + self._problem_total(problem)

    def carry(self, problem: str, cost: Cost, by_node: Mapping[str, Cost] | None = None) -> None:
        """Count a problem finished by an earlier session of the run (a resume): its cost is spent."""
        with self._lock:
            self._by_problem[problem] = self._problem_total(problem) + cost
            self._run_total = self._run_total + cost
            nodes = self._by_problem_node.setdefault(problem, {})
            for node, c in (by_node or {"": cost}).items():
                nodes[node] = nodes.get(node, Cost()) + c
        self.finish(problem)

    def limit_problem(self, problem: str, limits: Limits) -> None:
        """Add ``limits`` for one problem, on top of the budget's (a limit can only be lowered this way).

        A served request's own budget: each call of the problem must fit both the budget's per-problem
        limits and these.
        """
        with self._lock:
            self._limits[problem] = limits

    def forget(self, problem: str) -> None:
        """Drop what is kept per problem for a finished ``problem``; the run's totals keep its cost.

        A server calls it after answering a request, so that a long-running ledger stays small. The
        problem must hold no open reservation.
        """
        with self._lock:
            tables = (self._by_problem, self._reserved_by_problem, self._by_problem_node, self._refused, self._limits)
            for table in tables:
                table.pop(problem, None)  # type: ignore[attr-defined]
            self._settled = {k: v for k, v in self._settled.items() if k.problem != problem}
            if self._planned is None:  # no fair shares to keep right
                self._finished.discard(problem)

    def problem_refusals(self, problem: str) -> list[str]:
        """The messages of the calls refused to ``problem``, in order."""
        with self._lock:
            return list(self._refused.get(problem, ()))

    def problem_by_node(self, problem: str) -> dict[str, Cost]:
        """What ``problem`` cost at each node."""
        with self._lock:
            return dict(self._by_problem_node.get(problem, {}))

    @contextlib.contextmanager
    def charged(self, scope: Scope, worst: Cost) -> Iterator[Reservation]:
        """Reserve ``worst`` for the block: released if the block raises, charged in full if it never settles.

        For callers that are not engines (a reward model scoring in-process, a sandboxed test run)::

            with ledger.charged(scope, worst) as r:
                ...  # do the work
                r.settle(actual)
        """
        r = self.reserve(scope, worst)
        try:
            yield r
        except BaseException:
            if not r.done:
                r.release()
            raise
        if not r.done:
            r.settle(worst)

    @staticmethod
    def _check(limits: Limits, current: Cost, worst: Cost) -> str | None:
        if not limits.active:
            return None
        if limits.seconds is not None and current.seconds >= limits.seconds:
            return f"seconds {current.seconds:.6g} >= {limits.seconds:.6g}"
        after = current + worst
        return limits.broken_by(Cost(**{**asdict(after), "seconds": current.seconds}))

    def _close(self, r: Reservation, actual: Cost | None) -> Cost:
        with self._lock:
            if r.done:
                raise BudgetError("reservation already settled or released")
            r.done = True
            self._open.discard(id(r))
            self._reserved = self._reserved - r.worst
            self._reserved_by_problem[r.scope.problem] = self._reserved_by_problem[r.scope.problem] - r.worst
            if actual is None:
                return Cost()
            if any(getattr(actual, q) > getattr(r.worst, q) * (1 + 1e-9) for q in LIMITS if q != "seconds"):
                self.overruns += 1  # the caller's worst case was not one: a bug to report, not to hide
            self._settled[r.scope] = self._settled.get(r.scope, Cost()) + actual
            self._by_problem[r.scope.problem] = self._by_problem.get(r.scope.problem, Cost()) + actual
            nodes = self._by_problem_node.setdefault(r.scope.problem, {})
            nodes[r.scope.node] = nodes.get(r.scope.node, Cost()) + actual
            self._run_total = self._run_total + actual
            if self.keep_calls:
                self.calls.append((r.scope, actual))
            return actual

    @property
    def outstanding(self) -> int:
        """Reservations neither settled nor released."""
        return len(self._open)

    # ------------------------------------------------------------------ reading

    def _total(self) -> Cost:
        return self._run_total

    def _problem_total(self, problem: str) -> Cost:
        return self._by_problem.get(problem, Cost())

    def problem_total(self, problem: str) -> Cost:
        """Everything settled for one problem (all nodes)."""
        with self._lock:
            return self._problem_total(problem)

    def total(self) -> Cost:
        """Everything settled in the run."""
        with self._lock:
            return self._total()

    def by(self, key: str) -> dict[str, Cost]:
        """Settled costs by ``"node"`` or by ``"problem"``."""
        if key not in ("node", "problem"):
            raise BudgetError(f"Ledger.by: key must be 'node' or 'problem', got {key!r}")
        out: dict[str, Cost] = {}
        with self._lock:
            for scope, c in self._settled.items():
                k = getattr(scope, key)
                out[k] = out.get(k, Cost()) + c
        return out

    def entries(self) -> Iterator[tuple[Scope, Cost]]:
        """Settled costs by (node, problem)."""
        with self._lock:
            items = list(self._settled.items())
        yield from items

    def report(self) -> dict[str, Any]:
        """Totals, per node and per problem, as JSON-ready data."""
        return {
            "total": self.total().to_dict(),
            "by_node": {k: v.to_dict() for k, v in self.by("node").items()},
            "by_problem": {k: v.to_dict() for k, v in self.by("problem").items()},
            "refusals": self.refusals,
            "overruns": self.overruns,
        }

    def table(self, by: str = "node") -> Any:
        """A ``rich`` table of the settled costs by ``"node"`` or ``"problem"``, with the total."""
        rows = {k: v.to_dict() for k, v in self.by(by).items()}
        return cost_table(rows, self.total().to_dict(), by=by)

    def to_json(self) -> str:
        """:meth:`report` as JSON text."""
        return json.dumps(self.report(), indent=2)


def cost_table(rows: Mapping[str, Mapping[str, float]], total: Mapping[str, float], *, by: str) -> Any:
    """A ``rich`` table of costs (as :meth:`Cost.to_dict` writes them) by ``by``, with the total.

    Idealized latency and dollars get a column only when the total has some (a hardware profile or
    prices were declared), so that the table fits 80 columns without cutting its numbers.
    """
    from rich.table import Table

    columns = [
        ("calls", "calls", "{:,.0f}"),
        ("prompt", "prompt_tokens", "{:,.0f}"),
        ("cached", "cached_tokens", "{:,.0f}"),
        ("generated", "generated_tokens", "{:,.0f}"),
        ("FLOPs", "flops", "{:.3g}"),
        ("latency s", "latency", "{:.3g}"),
        ("wall s", "seconds", "{:.3g}"),
        ("dollars", "dollars", "{:.4g}"),
    ]
    columns = [c for c in columns if c[1] not in ("latency", "dollars") or total.get(c[1])]
    table = Table(title=f"Cost by {by}")
    table.add_column(by, overflow="fold")
    for label, _, _ in columns:
        table.add_column(label, justify="right", no_wrap=True, min_width=len(label))

    def row(name: str, c: Mapping[str, float]) -> list[str]:
        return [name, *(fmt.format(c.get(key, 0)) for _, key, fmt in columns)]

    for name, c in sorted(rows.items()):
        table.add_row(*row(name or "-", c))
    table.add_section()
    table.add_row(*row("total", total))
    return table
